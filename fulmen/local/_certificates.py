"""TLS certificates for a local broker: a throw-away certificate authority and a broker
certificate it signs, as PEM files that Kafka (``ssl.keystore.type=PEM``), librdkafka
(``ssl.ca.location``) and Python's ``ssl`` all read. Needs ``cryptography``, imported only
when certificates are made."""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

_VALID_FOR = datetime.timedelta(days=365)


@dataclass(frozen=True)
class BrokerCertificates:
    """The PEM files of one broker's TLS listener."""

    ca: Path
    """The authority's certificate: what clients trust (`FULMEN_KAFKA__SSL_CA_LOCATION`)."""
    keystore: Path
    """The broker's unencrypted PKCS#8 key, then its certificate and the authority's."""


def broker_certificates(directory: Path) -> BrokerCertificates:
    """The certificates in `directory`, made there first when missing: a new authority and a
    broker certificate for ``127.0.0.1`` and ``localhost``, valid for a year. The key files
    are readable by their owner only."""
    made = BrokerCertificates(ca=directory / "ca.pem", keystore=directory / "broker.pem")
    if made.ca.is_file() and made.keystore.is_file():
        return made
    directory.mkdir(parents=True, exist_ok=True)
    ca_pem, keystore_pem = _issue()
    _write_private(made.keystore, keystore_pem)
    made.ca.write_bytes(ca_pem)
    return made


def _issue() -> tuple[bytes, bytes]:
    """(the authority's certificate, the broker's key + certificate chain), as PEM."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Fulmen local broker CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALID_FOR)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALID_FOR)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,  # Kafka's PEM keystore reads PKCS#8 only
        serialization.NoEncryption(),
    )
    return ca_pem, key_pem + cert.public_bytes(serialization.Encoding.PEM) + ca_pem


def _write_private(path: Path, data: bytes) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
