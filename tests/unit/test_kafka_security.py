"""One set of Kafka settings for every client: librdkafka's options, the stream worker's Faust
credentials and TLS context, the ACLs a Fulmen user needs, and a secured local broker's
configuration."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from confluent_kafka.admin import ResourcePatternType, ResourceType
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from pydantic import ValidationError

from fulmen.kafka import KafkaSettings, KafkaTlsError, TopicSettings, fulmen_acls
from fulmen.local import BrokerSecurity, KafkaBrokerError
from fulmen.local._certificates import broker_certificates
from fulmen.streams._kafka_auth import UnsupportedKafkaAuth, broker_credentials


def _scram(ca: Path | None) -> KafkaSettings:
    return KafkaSettings(
        bootstrap_servers="broker:9094",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="fulmen",
        sasl_password="s3cret",  # type: ignore[arg-type]  # pydantic makes it a SecretStr
        ssl_ca_location=None if ca is None else str(ca),
    )


def test_sasl_without_mechanism_or_password_is_refused() -> None:
    with pytest.raises(ValidationError, match="FULMEN_KAFKA__SASL_MECHANISM"):
        KafkaSettings(security_protocol="SASL_SSL")
    with pytest.raises(ValidationError, match="FULMEN_KAFKA__SASL_PASSWORD"):
        KafkaSettings(
            security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512", sasl_username="u"
        )


def test_the_worker_gets_the_sdks_scram_and_tls(tmp_path: Path) -> None:
    settings = _scram(broker_certificates(tmp_path).ca)
    auth = credentials_to_aiokafka_auth(broker_credentials(settings))
    assert auth["security_protocol"] == "SASL_SSL"
    assert auth["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (auth["sasl_plain_username"], auth["sasl_plain_password"]) == ("fulmen", "s3cret")
    context = auth["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    assert settings.client_config()["ssl.ca.location"] == settings.ssl_ca_location


def test_plaintext_and_tls_only() -> None:
    assert broker_credentials(KafkaSettings()) is None
    auth = credentials_to_aiokafka_auth(broker_credentials(KafkaSettings(security_protocol="SSL")))
    assert auth["security_protocol"] == "SSL"
    assert auth["ssl_context"].verify_mode == ssl.CERT_REQUIRED


def test_a_missing_ca_file_names_its_setting(tmp_path: Path) -> None:
    with pytest.raises(KafkaTlsError, match="FULMEN_KAFKA__SSL_CA_LOCATION"):
        broker_credentials(_scram(tmp_path / "absent.pem"))


def test_mechanisms_the_worker_cannot_use_are_refused() -> None:
    settings = KafkaSettings(security_protocol="SASL_SSL", sasl_mechanism="OAUTHBEARER")
    with pytest.raises(UnsupportedKafkaAuth, match="OAUTHBEARER"):
        broker_credentials(settings)


def test_the_acls_cover_only_fulmens_topics_and_groups() -> None:
    bindings = fulmen_acls("User:fulmen", TopicSettings(prefix="prod."), app_id="workers")
    resources = {(b.restype, b.name, b.resource_pattern_type) for b in bindings}
    assert resources == {
        (ResourceType.TOPIC, "prod.", ResourcePatternType.PREFIXED),
        (ResourceType.TOPIC, "workers", ResourcePatternType.PREFIXED),
        (ResourceType.GROUP, "workers", ResourcePatternType.LITERAL),
        (ResourceType.GROUP, "fulmen-control-", ResourcePatternType.PREFIXED),
    }
    assert {b.principal for b in bindings} == {"User:fulmen"}


def test_a_secured_broker_enforces_acls_and_creates_its_users(tmp_path: Path) -> None:
    security = BrokerSecurity(admin_password="a-pw", users={"fulmen": "f-pw"})
    properties = security.properties(tmp_path)
    assert properties["authorizer.class.name"].endswith("StandardAuthorizer")
    assert properties["allow.everyone.if.no.acl.found"] == "false"
    assert Path(properties["ssl.keystore.location"]).stat().st_mode & 0o077 == 0
    assert security.format_arguments() == [
        "--add-scram",
        "SCRAM-SHA-512=[name=fulmen,password=f-pw]",
        "--add-scram",
        "SCRAM-SHA-512=[name=admin,password=a-pw]",
    ]
    with pytest.raises(KafkaBrokerError, match="letters, digits"):
        BrokerSecurity(admin_password="has,comma")
