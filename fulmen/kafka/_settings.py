"""Kafka connection and topic settings, converted to librdkafka options at the edge."""

from __future__ import annotations

import logging
from typing import Literal

from pydantic import BaseModel, Field, SecretStr

from fulmen.schemas import EventType

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
ClientConfig = dict[str, str | int | float | bool]

# librdkafka's own log lines (broker down, reconnects) go through Python logging, not stderr.
LIBRDKAFKA_LOGGER = logging.getLogger("fulmen.kafka.librdkafka")
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER", "GSSAPI"]


class KafkaSettings(BaseModel):
    """How to reach the cluster. `options` passes any librdkafka option through and wins over
    every value Fulmen derives (see librdkafka's CONFIGURATION.md)."""

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
    dead_letters: str = "dlq"

    def for_event(self, event_type: EventType) -> str:
        """The topic an event of `event_type` is produced to."""
        name = {
            "span": self.spans,
            "reward": self.rewards,
            "rollout": self.rollouts,
            "version": self.control,
            "episode": self.episodes,
        }[event_type]
        return self.prefix + name

    def dead_letter_topic(self) -> str:
        """Where the stream stage puts the messages it cannot use."""
        return self.prefix + self.dead_letters

    def stream_inputs(self) -> list[str]:
        """The stream worker's inputs, co-partitioned by rollout id: spans, rewards, rollouts."""
        return [self.for_event(kind) for kind in ("span", "reward", "rollout")]

    def stream_outputs(self) -> list[str]:
        """The topics the stream worker writes to: episode-completed events and dead letters."""
        return [self.for_event("episode"), self.dead_letter_topic()]

    def event_topics(self) -> list[str]:
        """The topics agents produce to (the stream stage's input)."""
        return [
            self.prefix + name for name in (self.spans, self.rewards, self.rollouts, self.control)
        ]


def _reveal(secret: SecretStr | None) -> str | None:
    return None if secret is None else secret.get_secret_value()
