"""Reading the control topic from its beginning, in order: from the in-process bus, or from
Kafka with a consumer that assigns every partition itself (no group) and waits for a topic
that does not exist yet. `VersionFollower` (`_control.py`) applies what they read."""

from __future__ import annotations

import logging
import time
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from fulmen.kafka import KafkaSettings
from fulmen.kafka._settings import CONTROL_GROUP_PREFIX, LIBRDKAFKA_LOGGER
from fulmen.producers.transport import InProcessBus

logger = logging.getLogger("fulmen.producers")

_BATCH = 500
_INPROCESS_POLL_S = 0.05
_NOT_READY_RETRY_S = 0.2
_NOT_READY_QUIET_S = 5.0


@dataclass(frozen=True)
class ControlMessage:
    partition: int
    offset: int
    value: bytes


class ControlReader(ABC):
    """The control topic from its beginning, in order. Used by one thread only."""

    @abstractmethod
    def read(self, timeout_s: float) -> list[ControlMessage]:
        """The next messages, waiting up to about `timeout_s` when there are none."""

    @abstractmethod
    def caught_up(self) -> bool:
        """Whether every message on the topic when reading began has been returned."""

    def close(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Release what the reader holds."""


class InProcessControlReader(ControlReader):
    """The control topic of an in-process bus.

    What a consumer of the bus released (the embedded runner releases what it has stored)
    is gone: a reader started after that begins with what is left.
    """

    def __init__(self, bus: InProcessBus, topic: str) -> None:
        self._bus = bus
        self._topic = topic
        self._offset = 0
        self._caught_up = False

    def read(self, timeout_s: float) -> list[ControlMessage]:
        messages = self._bus.read(self._topic, self._offset, max_messages=_BATCH, timeout_s=0)
        if not messages:
            if self._caught_up:
                # Polled rather than waited for: the bus wakes its waiters on every append to
                # any topic, which would wake this thread for every event the agent emits.
                time.sleep(min(timeout_s, _INPROCESS_POLL_S))
            self._caught_up = True
            return []
        self._offset = messages[-1].offset + 1
        return [ControlMessage(0, m.offset, m.value) for m in messages]

    def caught_up(self) -> bool:
        return self._caught_up


class KafkaControlReader(ControlReader):
    """Every partition of the control topic from its beginning, through a consumer that
    joins no group: partitions are assigned, not subscribed, and nothing is committed
    (unique `group.id`, `enable.auto.commit` off). Caught up once it has returned every
    partition's messages up to the end offsets (high watermarks) queried at assignment, or
    the partition reported its end. A topic that does not exist yet holds no versions: the
    reader is caught up and looks for it again every `retry_missing_s`.
    """

    def __init__(
        self,
        settings: KafkaSettings,
        topic: str,
        *,
        metadata_timeout_s: float = 2.0,
        retry_missing_s: float = 5.0,
    ) -> None:
        self._topic = topic
        self._metadata_timeout_s = metadata_timeout_s
        self._retry_missing_s = retry_missing_s
        self._consumer = Consumer(
            {
                **settings.client_config(),
                "group.id": f"{CONTROL_GROUP_PREFIX}{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "enable.partition.eof": True,
                "auto.offset.reset": "earliest",
                "queued.max.messages.kbytes": 1024,  # a small topic: bound the prefetch
                **settings.options,
                "logger": LIBRDKAFKA_LOGGER,
            }
        )
        self._partitions: set[int] = set()
        self._unread: dict[int, int] = {}  # partition -> end offset at assignment, until read
        self._missing = False
        self._next_lookup = 0.0
        self._not_ready_since = 0.0

    def read(self, timeout_s: float) -> list[ControlMessage]:
        if not self._partitions and not self._assign():
            time.sleep(timeout_s)
            return []
        batch: list[ControlMessage] = []
        for message in self._consumer.consume(_BATCH, timeout_s):
            error = message.error()
            partition = message.partition() or 0
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    self._unread.pop(partition, None)
                elif error.fatal():
                    raise KafkaException(error)
                else:
                    logger.debug("fulmen control consumer: %s", error.str())
                continue
            offset = message.offset() or 0
            if offset + 1 >= self._unread.get(partition, 0):
                self._unread.pop(partition, None)
            batch.append(ControlMessage(partition, offset, message.value() or b""))
        return batch

    def caught_up(self) -> bool:
        return self._missing or (bool(self._partitions) and not self._unread)

    def close(self) -> None:
        self._consumer.close()

    def _assign(self) -> bool:
        """Assign every partition from its beginning; False when there is nothing to assign
        yet (the topic is missing, or not ready)."""
        if time.monotonic() < self._next_lookup:
            return False
        metadata = self._consumer.list_topics(self._topic, timeout=self._metadata_timeout_s)
        found = metadata.topics.get(self._topic)
        if found is None or (
            found.error is not None and found.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART
        ):
            self._missing = True
            self._next_lookup = time.monotonic() + self._retry_missing_s
            return False
        if found.error is not None or not found.partitions:
            return self._not_ready(KafkaException(found.error or "no partitions"))
        partitions = sorted(found.partitions)
        unread: dict[int, int] = {}
        for partition in partitions:
            try:
                low, high = self._consumer.get_watermark_offsets(
                    TopicPartition(self._topic, partition),
                    timeout=self._metadata_timeout_s,
                    cached=False,
                )
            except KafkaException as exc:
                return self._not_ready(exc)
            if high > low:
                unread[partition] = high
        self._consumer.assign(
            [TopicPartition(self._topic, p, OFFSET_BEGINNING) for p in partitions]
        )
        self._missing = False
        self._not_ready_since = 0.0
        self._partitions, self._unread = set(partitions), unread
        return True

    def _not_ready(self, problem: KafkaException) -> bool:
        """A topic just created has no leader for a moment: look again soon, and report the
        problem (raise it) only when it lasts."""
        now = time.monotonic()
        self._not_ready_since = self._not_ready_since or now
        if now - self._not_ready_since > _NOT_READY_QUIET_S:
            self._not_ready_since = 0.0
            raise problem
        logger.debug("fulmen control topic %s not ready: %s", self._topic, problem)
        self._next_lookup = now + _NOT_READY_RETRY_S
        return False
