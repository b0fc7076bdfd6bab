"""A local broker's secured client listener: SASL_SSL with SCRAM-SHA-512 users and ACLs
enforced by Kafka's StandardAuthorizer."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from fulmen.local._certificates import BrokerCertificates, broker_certificates
from fulmen.local._jvm import KafkaBrokerError

MECHANISM = "SCRAM-SHA-512"
LISTENER = "SASL_SSL"
# Names and passwords go into `--add-scram '…=[name=…,password=…]'` and a JAAS line unquoted.
_TOKEN = re.compile(r"[A-Za-z0-9_.\-]+")


@dataclass(frozen=True)
class BrokerSecurity:
    """What a secured local broker requires of its clients.

    The client listener is SASL_SSL (SCRAM-SHA-512) with a certificate made at the first
    start in ``<data_dir>/tls`` (clients trust ``<data_dir>/tls/ca.pem``); the broker talks
    to itself over it as `admin_user`. Every user of `admin_user` and `users` is created at
    storage-format time, so a broker whose storage already exists keeps the users it was
    formatted with. `admin_user` is a super user; everyone else may do only what ACLs allow
    (none at first; `allow.everyone.if.no.acl.found` stays false). The controller listener
    stays PLAINTEXT on 127.0.0.1, its (anonymous) principal a super user: the broker's
    requests to its own controller arrive through it.

    Names and passwords are letters, digits, ``_``, ``.`` and ``-``.
    """

    admin_password: str
    users: Mapping[str, str] = field(default_factory=dict)
    """Further SCRAM users: name → password."""
    admin_user: str = "admin"

    def __post_init__(self) -> None:
        for name, password in self.credentials().items():
            if not (_TOKEN.fullmatch(name) and _TOKEN.fullmatch(password)):
                raise KafkaBrokerError(
                    f"SCRAM user {name!r}: names and passwords may hold only letters, digits, "
                    "'_', '.' and '-'"
                )

    def credentials(self) -> dict[str, str]:
        """Every SCRAM user the broker is formatted with: name → password."""
        return {**self.users, self.admin_user: self.admin_password}

    def certificates(self, data_dir: Path) -> BrokerCertificates:
        """The listener's certificates in ``data_dir/tls``, made when missing."""
        return broker_certificates(data_dir / "tls")

    def format_arguments(self) -> list[str]:
        """`kafka.tools.StorageTool format` arguments that create the SCRAM users."""
        arguments: list[str] = []
        for name, password in self.credentials().items():
            arguments += ["--add-scram", f"{MECHANISM}=[name={name},password={password}]"]
        return arguments

    def properties(self, data_dir: Path) -> dict[str, str]:
        """``server.properties`` entries for the SASL_SSL listener named `LISTENER`."""
        certificates = self.certificates(data_dir)
        jaas = (
            "org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="{self.admin_user}" password="{self.admin_password}";'
        )
        return {
            "sasl.enabled.mechanisms": MECHANISM,
            "sasl.mechanism.inter.broker.protocol": MECHANISM,
            f"listener.name.{LISTENER.lower()}.{MECHANISM.lower()}.sasl.jaas.config": jaas,
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(certificates.keystore),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(certificates.ca),
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users": f"User:{self.admin_user};User:ANONYMOUS",
            "allow.everyone.if.no.acl.found": "false",
        }
