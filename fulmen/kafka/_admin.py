"""Topics a process needs before it reads or writes them."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (  # type: ignore[attr-defined]  # imported, not re-exported
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
)
from confluent_kafka.cimpl import NewTopic

from fulmen.errors import FulmenError
from fulmen.kafka._settings import LIBRDKAFKA_LOGGER, KafkaSettings, TopicSettings

log = logging.getLogger("fulmen.kafka")


class BrokerUnreachable(FulmenError, RuntimeError):
    """No Kafka broker of the bootstrap servers answered in time."""


class BrokerRefused(FulmenError, RuntimeError):
    """A broker answered but refused this client: its TLS handshake or SASL authentication
    failed. Waiting does not help; the settings must change."""


# What librdkafka reports when the handshake itself fails: a wrong password or mechanism,
# an untrusted certificate. Anything else (refused connections, timeouts) may pass.
_REFUSALS = frozenset({KafkaError._AUTHENTICATION, KafkaError._SSL})


class _LastError:
    """librdkafka's `error_cb`: keeps the latest client-wide error that says why brokers are
    down (not the summary "all brokers are down" that follows it)."""

    def __init__(self) -> None:
        self.error: KafkaError | None = None

    def __call__(self, error: KafkaError) -> None:
        if self.error is None or error.code() != KafkaError._ALL_BROKERS_DOWN:
            self.error = error

    def refusal(self, settings: KafkaSettings) -> BrokerRefused | None:
        if self.error is None or self.error.code() not in _REFUSALS:
            return None
        return BrokerRefused(
            f"the Kafka broker at {settings.bootstrap_servers} refused this client "
            f"({settings.security_protocol}, user {settings.sasl_username}): "
            f"{self.error.str()}; check FULMEN_KAFKA__SECURITY_PROTOCOL, "
            "FULMEN_KAFKA__SASL_* and FULMEN_KAFKA__SSL_*"
        )


def ensure_topics(
    settings: KafkaSettings,
    topics: Sequence[str],
    *,
    partitions: int,
    config: Mapping[str, Mapping[str, str]] | None = None,
    wait_s: float | None = 30.0,
) -> dict[str, int]:
    """Create those of `topics` that do not exist (with `partitions` and their `config`), set
    `config` on those that do, and return every topic's partition count. Waits up to
    `wait_s` (None: as long as it takes) for a broker to answer; `BrokerRefused` at once when
    one answers but refuses these settings' credentials or TLS."""
    errors = _LastError()
    client: dict[str, Any] = {
        **settings.client_config(),
        "logger": LIBRDKAFKA_LOGGER,
        "error_cb": errors,
    }
    admin = AdminClient(client)
    config = config or {}
    existing = _partitions(admin, settings, errors, wait_s=wait_s)
    wanted = [
        NewTopic(t, num_partitions=partitions, config=dict(config.get(t, {})))
        for t in topics
        if t not in existing
    ]
    for topic, future in admin.create_topics(wanted).items() if wanted else []:
        try:
            future.result(timeout=30)
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise RuntimeError(f"creating {topic}: {exc}") from exc
    altered = [
        ConfigResource(
            "TOPIC",
            topic,
            incremental_configs=[
                ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET)
                for name, value in config[topic].items()
            ],
        )
        for topic in topics
        if topic in existing and config.get(topic)
    ]
    for resource, future in admin.incremental_alter_configs(altered).items() if altered else []:
        try:
            future.result(timeout=30)
        except KafkaException as exc:  # e.g. no ALTER_CONFIGS right: the topic stays as it is
            log.warning(
                "could not set %s on %s: %s", dict(config[resource.name]), resource.name, exc
            )
    # Created here or, racing, by someone else (a broker creating it on first use): ask again.
    found = _partitions(admin, settings, errors, wait_s=wait_s) if wanted else existing
    return {topic: found.get(topic, partitions) for topic in topics}


def create_fulmen_topics(
    settings: KafkaSettings, topics: TopicSettings, *, partitions: int
) -> dict[str, int]:
    """Create those of Fulmen's topics that do not exist: spans, rewards, rollouts,
    feedback, episodes and dead letters with `partitions` each (the worker's co-partitioned
    inputs), the control topic with one (every version in one order; agents read it whole).
    Topics that exist are left as they are. Returns every topic's partition count. The
    worker's changelog is the worker's own (it creates it at start)."""
    names = [*topics.stream_inputs(), *topics.stream_outputs()]
    found = ensure_topics(settings, names, partitions=partitions)
    found.update(ensure_topics(settings, [topics.for_event("version")], partitions=1))
    return found


def _partitions(
    admin: AdminClient, settings: KafkaSettings, errors: _LastError, *, wait_s: float | None
) -> dict[str, int]:
    deadline = None if wait_s is None else time.monotonic() + wait_s
    while True:
        try:
            metadata: Any = admin.list_topics(timeout=10.0 if wait_s is None else min(10.0, wait_s))
            return {name: len(topic.partitions) for name, topic in metadata.topics.items()}
        except KafkaException as exc:
            admin.poll(0)  # serves `error_cb`: why no broker answered
            refusal = errors.refusal(settings)
            if refusal is not None:
                raise refusal from exc
            why = exc if errors.error is None else f"{exc}; last error: {errors.error.str()}"
            if deadline is not None and time.monotonic() > deadline:
                raise BrokerUnreachable(
                    f"no Kafka broker at {settings.bootstrap_servers} answered within {wait_s} s "
                    f"({why}): start one (`fulmen kafka up`), or set "
                    "FULMEN_KAFKA__BOOTSTRAP_SERVERS (and FULMEN_KAFKA__SECURITY_PROTOCOL "
                    "when the cluster requires TLS or SASL)"
                ) from exc
            log.warning(
                "waiting for a Kafka broker at %s (FULMEN_KAFKA__BOOTSTRAP_SERVERS): %s",
                settings.bootstrap_servers,
                why,
            )
            time.sleep(1.0)
