"""A confluent-kafka producer behind the producer SDK's `Transport` interface."""

from __future__ import annotations

from typing import Any

import orjson
from confluent_kafka import KafkaError, Message, Producer

from fulmen.kafka._settings import LIBRDKAFKA_LOGGER, KafkaSettings
from fulmen.producers.transport import Transport, TransportFull

# Delivery errors that sending the same bytes again cannot cure; anything else (timeouts,
# purges, lost connections, leader changes) is worth another attempt from the spill.
_PERMANENT = frozenset(
    {
        KafkaError.MSG_SIZE_TOO_LARGE,
        KafkaError.RECORD_LIST_TOO_LARGE,
        KafkaError.INVALID_MSG,
        KafkaError.INVALID_MSG_SIZE,
        KafkaError.INVALID_RECORD,
        KafkaError.INVALID_REQUIRED_ACKS,
        KafkaError.UNSUPPORTED_FOR_MESSAGE_FORMAT,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.CLUSTER_AUTHORIZATION_FAILED,
        KafkaError._INVALID_ARG,
    }
)


class KafkaTransport(Transport):
    """Idempotent, acks=all, compressed, batched; keys hash with murmur2 like the Java
    client and aiokafka, so every Fulmen topic is co-partitioned by rollout id.

    Only failures produce delivery reports (`delivery.report.only.error`): a success costs
    no Python call, so `delivered` is derived from what left the queue without failing.
    Whether a broker is reachable comes from librdkafka's statistics (each broker's
    connection state, once a second): a broker that is up but slow to acknowledge (say, a
    coordinator still loading) is not an outage.
    """

    def __init__(self, settings: KafkaSettings, *, producer_options: dict[str, str]) -> None:
        super().__init__()
        config: dict[str, Any] = {
            **settings.client_config(),
            "enable.idempotence": True,
            "acks": "all",
            "partitioner": "murmur2_random",
            "delivery.report.only.error": True,
            **producer_options,
            **settings.options,
        }
        config["on_delivery"] = self._on_delivery
        config["logger"] = LIBRDKAFKA_LOGGER
        config.setdefault("statistics.interval.ms", 1000)
        config["stats_cb"] = self._on_stats
        self._unreachable = False
        self._producer = Producer(config)

    def produce(self, topic: str, key: bytes, value: bytes) -> None:
        """Queue one message; `TransportFull` when librdkafka's buffer is full, and
        confluent-kafka's `KafkaException` when it refuses this message (e.g. larger than
        `message.max.bytes`)."""
        try:
            self._producer.produce(topic, value, key)
        except BufferError as exc:
            raise TransportFull(str(exc)) from exc

    def poll(self, timeout_s: float) -> None:
        self._producer.poll(timeout_s)

    def pending(self) -> int:
        return len(self._producer)

    def unreachable(self) -> bool:
        return self._unreachable

    def _on_stats(self, stats: str) -> None:
        brokers = orjson.loads(stats).get("brokers", {})
        self._unreachable = bool(brokers) and all(
            broker.get("state") != "UP" for broker in brokers.values()
        )

    def flush(self, timeout_s: float) -> int:
        remaining: int = self._producer.flush(timeout_s)
        return remaining

    def purge(self) -> None:
        self._producer.purge(in_queue=True, in_flight=True, blocking=False)
        self._producer.poll(0)
        self._producer.flush(0)

    def _on_delivery(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self.report_failure(
                message.topic() or "",
                message.key() or b"",
                message.value() or b"",
                error.str(),
                permanent=error.code() in _PERMANENT,
            )
