"""The stream worker's Kafka credentials: Faust's (aiokafka's) form of the same
`KafkaSettings` every other Fulmen client reads."""

from __future__ import annotations

from typing import assert_never

import faust
from faust.types.auth import CredentialsT

from fulmen.errors import FulmenError
from fulmen.kafka import KafkaSettings


class UnsupportedKafkaAuth(FulmenError):
    """The Kafka settings name a SASL mechanism the stream worker cannot use."""


def broker_credentials(kafka: KafkaSettings) -> CredentialsT | None:
    """Faust's `broker_credentials` for `kafka`: None for PLAINTEXT; TLS with the context of
    `KafkaSettings.ssl_context` for SSL and SASL_SSL; username and password for the PLAIN
    and SCRAM mechanisms. OAUTHBEARER and GSSAPI, which librdkafka configures through
    `options`, raise `UnsupportedKafkaAuth`."""
    context = kafka.ssl_context()
    match kafka.security_protocol:
        case "PLAINTEXT":
            return None
        case "SSL":
            return faust.SSLCredentials(context)
        case "SASL_PLAINTEXT" | "SASL_SSL":
            mechanism = kafka.sasl_mechanism
            if mechanism not in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"):
                raise UnsupportedKafkaAuth(
                    f"FULMEN_KAFKA__SASL_MECHANISM={mechanism}: the stream worker "
                    "authenticates with PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 only"
                )
            password = kafka.sasl_password
            return faust.SASLCredentials(
                username=kafka.sasl_username,
                password=None if password is None else password.get_secret_value(),
                mechanism=mechanism,
                ssl_context=context,
            )
        case _:
            assert_never(kafka.security_protocol)
