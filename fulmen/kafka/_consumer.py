"""Reading Fulmen events back from Kafka, with undecodable messages reported, not fatal."""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaException

from fulmen.kafka._admin import ensure_topics
from fulmen.kafka._settings import LIBRDKAFKA_LOGGER, KafkaSettings
from fulmen.schemas import Codec, DecodeError, Event, SingleObjectCodec


@dataclass(frozen=True)
class Consumed:
    """One message: the event, or the `DecodeError` saying why its bytes are not one."""

    topic: str
    partition: int
    offset: int
    key: bytes
    value: bytes
    event: Event | DecodeError


class EventConsumer:
    """A consumer-group member over Fulmen topics that decodes as it reads.

    Offsets are committed only by `commit()`, after the caller has processed what it read.
    """

    def __init__(
        self,
        settings: KafkaSettings,
        topics: list[str],
        *,
        group_id: str,
        codec: Codec | None = None,
        from_beginning: bool = True,
    ) -> None:
        self._codec = codec or SingleObjectCodec()
        self._consumer = Consumer(
            {
                **settings.client_config(),
                "group.id": group_id,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest" if from_beginning else "latest",
                **settings.options,
                "logger": LIBRDKAFKA_LOGGER,
            }
        )
        self._consumer.subscribe(topics)

    def poll(self, *, max_messages: int = 500, timeout_s: float = 1.0) -> list[Consumed]:
        batch: list[Consumed] = []
        for message in self._consumer.consume(max_messages, timeout_s):
            error = message.error()
            if error is not None:
                if error.fatal():
                    raise KafkaException(error)
                continue
            topic, value = message.topic() or "", message.value() or b""
            event: Event | DecodeError
            try:
                event = self._codec.decode(value, topic=topic)
            except DecodeError as problem:
                event = problem
            batch.append(
                Consumed(
                    topic,
                    message.partition() or 0,
                    message.offset() or 0,
                    message.key() or b"",
                    value,
                    event,
                )
            )
        return batch

    def commit(self) -> None:
        self._consumer.commit(asynchronous=False)

    def close(self) -> None:
        self._consumer.close()


def create_topics(settings: KafkaSettings, topics: list[str], *, partitions: int = 4) -> None:
    """Create `topics` (those that exist already are left as they are)."""
    ensure_topics(settings, topics, partitions=partitions)
