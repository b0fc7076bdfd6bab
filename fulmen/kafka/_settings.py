"""Kafka connection and topic settings, converted to librdkafka options at the edge."""

from __future__ import annotations

import logging
import ssl
from typing import Literal, Self

from pydantic import BaseModel, Field, SecretStr, model_validator

from fulmen.errors import FulmenError
from fulmen.schemas import EventType

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
ClientConfig = dict[str, str | int | float | bool]

# librdkafka's own log lines (broker down, reconnects) go through Python logging, not stderr.
LIBRDKAFKA_LOGGER = logging.getLogger("fulmen.kafka.librdkafka")
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER", "GSSAPI"]
PASSWORD_MECHANISMS: frozenset[SaslMechanism] = frozenset(
    {"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"}
)
"""The mechanisms that authenticate with `sasl_username` and `sasl_password`."""
CONTROL_GROUP_PREFIX = "fulmen-control-"
"""Every control topic reader's consumer group starts so (one group per reader)."""


class KafkaTlsError(FulmenError):
    """The TLS files of the Kafka settings cannot be read or do not fit together."""


class KafkaSettings(BaseModel):
    """How every Fulmen client reaches the cluster: the producer SDK, consumers, the admin
    client and the stream worker alike (`FULMEN_KAFKA__*`).

    `security_protocol` SSL or SASL_SSL: the broker's certificate is verified against
    `ssl_ca_location` (a PEM file; the system's authorities when unset) and its host name; a
    client certificate (`ssl_certificate_location`, `ssl_key_location`, PEM) is presented
    when set. SASL_PLAINTEXT or SASL_SSL: `sasl_mechanism` is required, and PLAIN and SCRAM
    need `sasl_username` and `sasl_password`. `options` passes any librdkafka option through
    to the librdkafka clients and wins over every value Fulmen derives (see librdkafka's
    CONFIGURATION.md); the stream worker (aiokafka) does not read it.
    """

    bootstrap_servers: str = "127.0.0.1:9092"
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_location: str | None = None
    ssl_certificate_location: str | None = None
    ssl_key_location: str | None = None
    ssl_key_password: SecretStr | None = None
    options: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _sasl_complete(self) -> Self:
        if not self.security_protocol.startswith("SASL_"):
            return self
        if self.sasl_mechanism is None:
            raise ValueError(
                f"security_protocol {self.security_protocol} needs sasl_mechanism "
                "(FULMEN_KAFKA__SASL_MECHANISM, e.g. SCRAM-SHA-512)"
            )
        missing = self.sasl_username is None or self.sasl_password is None
        if self.sasl_mechanism in PASSWORD_MECHANISMS and missing:
            raise ValueError(
                f"sasl_mechanism {self.sasl_mechanism} needs sasl_username and sasl_password "
                "(FULMEN_KAFKA__SASL_USERNAME, FULMEN_KAFKA__SASL_PASSWORD)"
            )
        return self

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS side of these settings for clients that take a Python `ssl.SSLContext`
        (the stream worker's aiokafka): None unless `security_protocol` is SSL or SASL_SSL.
        `KafkaTlsError` names the setting whose file cannot be used."""
        if self.security_protocol not in ("SSL", "SASL_SSL"):
            return None
        try:
            context = ssl.create_default_context(cafile=self.ssl_ca_location)
        except (OSError, ssl.SSLError) as exc:
            raise KafkaTlsError(
                f"FULMEN_KAFKA__SSL_CA_LOCATION={self.ssl_ca_location}: {exc}"
            ) from exc
        if self.ssl_certificate_location is not None:
            try:
                context.load_cert_chain(
                    self.ssl_certificate_location,
                    self.ssl_key_location,
                    password=_reveal(self.ssl_key_password),
                )
            except (OSError, ssl.SSLError) as exc:
                raise KafkaTlsError(
                    f"FULMEN_KAFKA__SSL_CERTIFICATE_LOCATION={self.ssl_certificate_location}, "
                    f"FULMEN_KAFKA__SSL_KEY_LOCATION={self.ssl_key_location}: {exc}"
                ) from exc
        return context

    def client_config(self) -> ClientConfig:
        """librdkafka configuration for any client (producer, consumer, admin)."""
        config: ClientConfig = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol.lower(),
        }
        optional = {
            "sasl.mechanism": self.sasl_mechanism,
            "sasl.username": self.sasl_username,
            "sasl.password": _reveal(self.sasl_password),
            "ssl.ca.location": self.ssl_ca_location,
            "ssl.certificate.location": self.ssl_certificate_location,
            "ssl.key.location": self.ssl_key_location,
            "ssl.key.password": _reveal(self.ssl_key_password),
        }
        config.update({key: value for key, value in optional.items() if value is not None})
        return config | self.options


class TopicSettings(BaseModel):
    """Topic names: `prefix` + name. One topic per event type, plus the derived topics."""

    prefix: str = "fulmen."
    spans: str = "spans"
    rewards: str = "rewards"
    rollouts: str = "rollouts"
    control: str = "control"
    episodes: str = "episodes"
    feedback: str = "feedback"
    dead_letters: str = "dlq"

    def for_event(self, event_type: EventType) -> str:
        """The topic an event of `event_type` is produced to."""
        name = {
            "span": self.spans,
            "reward": self.rewards,
            "rollout": self.rollouts,
            "version": self.control,
            "decision": self.control,
            "serving_ack": self.control,
            "episode": self.episodes,
            "feedback": self.feedback,
        }[event_type]
        return self.prefix + name

    def dead_letter_topic(self) -> str:
        """Where the stream stage puts the messages it cannot use."""
        return self.prefix + self.dead_letters

    def stream_inputs(self) -> list[str]:
        """The stream worker's inputs, co-partitioned by rollout id: spans, rewards, rollouts
        and feedback."""
        return [self.for_event(kind) for kind in ("span", "reward", "rollout", "feedback")]

    def stream_outputs(self) -> list[str]:
        """The topics the stream worker writes to: episode-completed events and dead letters."""
        return [self.for_event("episode"), self.dead_letter_topic()]

    def event_topics(self) -> list[str]:
        """The topics agents produce to (the stream stage's input)."""
        names = (self.spans, self.rewards, self.rollouts, self.control, self.feedback)
        return [self.prefix + name for name in names]


def _reveal(secret: SecretStr | None) -> str | None:
    return None if secret is None else secret.get_secret_value()
