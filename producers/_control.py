"""Versions on the control topic: trainers publish them, agents follow them and hot-swap.

Publishing (`publish_version`) goes through the same transport and codec as every other
event. Following (`VersionFollower`) reads the control topic from its beginning, folds what
is already there into the versions in force, then applies each new version as it arrives.
The agent-facing calls (`resources`, `prompt`, `on_version`, `wait_for_version`) read the
process-wide producer's versions. See docs/versions.md.
"""

from __future__ import annotations

import functools
import itertools
import logging
import os
import socket
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

import uuid_utils
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from fulmen.errors import FulmenError
from fulmen.kafka import KafkaSettings
from fulmen.kafka._settings import LIBRDKAFKA_LOGGER
from fulmen.producers._global import current_producer, get_producer, version_listeners
from fulmen.producers._producer import Producer, codec_for, transport_for
from fulmen.producers._resources import Resources, VersionListener, VersionState
from fulmen.producers._settings import FulmenSettings
from fulmen.producers.transport import InProcessBus, InProcessTransport, TransportFull
from fulmen.schemas import Codec, DecodeError, EventMeta, VersionEvent

logger = logging.getLogger("fulmen.producers")

CONTROL_KEY = b"fulmen.versions"
"""The key of every version message. One key puts every version in one partition of the
control topic, so every agent sees them in the same total order (per agent included): the
order in which they were published."""

_BATCH = 500
_POLL_S = 0.25
_RETRY_S = 1.0
_INPROCESS_POLL_S = 0.05
_NOT_READY_RETRY_S = 0.2
_NOT_READY_QUIET_S = 5.0
_publisher_sequence = itertools.count()


class VersionNotPublished(FulmenError):
    """`publish_version` could not deliver the version within its timeout (or had nowhere to
    deliver it). Publishing the same version again is harmless."""


# -- publishing ------------------------------------------------------------------------------


def version_meta() -> EventMeta:
    """A fresh envelope for a `VersionEvent`: a new event id (UUIDv7), this process's
    publisher identity and next sequence number, no agent and no versions.

    Each publication, a rollback's re-publication included, takes a fresh one.
    """
    event_id = str(uuid_utils.uuid7())
    return EventMeta(
        event_id=event_id,
        rollout_id=f"version-{event_id}",
        attempt=1,
        producer_id=_publisher_id(os.getpid()),
        sequence=next(_publisher_sequence),
        emitted_at_unix_nano=time.time_ns(),
    )


@functools.cache
def _publisher_id(pid: int) -> str:
    return f"publisher-{socket.gethostname()}-{pid}-{uuid_utils.uuid7().hex[-8:]}"


def publish_version(
    event: VersionEvent,
    settings: FulmenSettings | None = None,
    *,
    bus: InProcessBus | None = None,
    timeout_s: float = 30.0,
) -> None:
    """Put `event` on the control topic; return once it is delivered.

    `settings` say where: a trainer job passes its own; by default those of this process's
    configured producer, else the environment's (`FulmenSettings()`). On Kafka a producer of
    its own (idempotent, `acks=all`) sends it and waits for the acknowledgement, so nothing
    the agent emits is waited for. On the in-process transport it is appended to `bus`, by
    default the configured producer's bus.

    Every version is keyed `CONTROL_KEY`: agents apply versions in publication order.
    Raises `VersionNotPublished` when the broker has not acknowledged it within `timeout_s`,
    when it cannot be encoded, or when the in-process transport has no bus to go to.
    """
    producer = current_producer()
    if settings is None:
        settings = producer.settings if producer is not None else FulmenSettings()
    topic = settings.topics.for_event("version")
    if settings.transport == "inprocess" and bus is None:
        if producer is None or not isinstance(producer.transport, InProcessTransport):
            raise VersionNotPublished(
                "the in-process transport needs a bus: pass bus=, or configure the agent "
                "(fulmen.configure) in this process first"
            )
        bus = producer.transport.bus
    if producer is not None and producer.settings is settings:
        codec = producer.codec  # a registry codec keeps its schema cache
    else:
        codec = codec_for(settings)
    try:
        value = codec.encode(event, topic=topic)
    except Exception as exc:  # an encoding or schema-registry failure: nothing was sent
        raise VersionNotPublished(f"cannot encode version {event.version_id}: {exc}") from exc
    # librdkafka gives up on the message itself at the deadline, so a timeout is a reported
    # failure rather than a message still in flight.
    config = settings.producer
    publishing = settings.model_copy(
        update={
            "producer": config.model_copy(
                update={
                    "linger_ms": 0,
                    "message_timeout_ms": max(1, int(timeout_s * 1000)),
                }
            )
        }
    )
    transport = transport_for(publishing, bus=bus)
    failures: list[str] = []
    transport.listen(lambda _topic, _key, _value, reason, _permanent: failures.append(reason))
    try:
        transport.produce(topic, CONTROL_KEY, value)
    except TransportFull as exc:
        raise VersionNotPublished(f"version {event.version_id} not queued: {exc}") from exc
    remaining = transport.flush(timeout_s + 2.0)
    if remaining:
        transport.purge()
    if failures or remaining:
        reason = failures[0] if failures else "no acknowledgement"
        raise VersionNotPublished(
            f"version {event.version_id} not delivered to {topic} within {timeout_s} s: {reason}"
        )
    logger.info("fulmen published %s version %s on %s", event.kind, event.version_id, topic)


# -- reading the control topic ----------------------------------------------------------------


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
                "group.id": f"fulmen-control-{uuid.uuid4().hex}",
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


# -- following -------------------------------------------------------------------------------


def decode_version(codec: Codec, topic: str, message: ControlMessage) -> VersionEvent | None:
    """The version `message` holds; None, with a warning, for an undecodable message or an
    event that is not a version."""
    where = f"{topic}[{message.partition}]@{message.offset}"
    try:
        event = codec.decode(message.value, topic=topic)
    except DecodeError as exc:
        logger.warning("fulmen skipped an undecodable control message at %s: %s", where, exc)
        return None
    if not isinstance(event, VersionEvent):
        logger.warning(
            "fulmen skipped a %s event on the control topic at %s", event.event_type, where
        )
        return None
    return event


class VersionFollower:
    """Applies the control topic's versions to `versions`, on a daemon thread.

    Everything already on the topic is folded into one swap — for each kind, the last
    version in topic order that targets the agent — after which `wait_caught_up` returns
    True; then each batch of new versions is swapped in as it arrives. Undecodable messages
    and events that are not versions are skipped with a warning; read errors (a broker
    down) are logged and retried. The thread ends only with `stop`.
    """

    def __init__(
        self, reader: ControlReader, codec: Codec, versions: VersionState, *, topic: str
    ) -> None:
        self._reader = reader
        self._codec = codec
        self._versions = versions
        self._topic = topic
        self._caught_up = threading.Event()
        self._stopping = threading.Event()
        self._failing = False
        self._thread = threading.Thread(target=self._run, name="fulmen-versions", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wait_caught_up(self, timeout_s: float) -> bool:
        """Wait until the versions already on the topic are applied; False on timeout."""
        return self._caught_up.wait(timeout_s)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop following (the versions in force stay) and release the reader."""
        self._stopping.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout_s)

    def _run(self) -> None:
        backlog: list[VersionEvent] = []
        try:
            while not self._stopping.is_set():
                try:
                    messages = self._reader.read(_POLL_S)
                except Exception as exc:  # a broker down, a metadata timeout: try again
                    self._report_failure(exc)
                    self._stopping.wait(_RETRY_S)
                    continue
                self._report_recovery()
                try:
                    backlog = self._apply(messages, backlog)
                except Exception:  # never let one message end the following
                    logger.exception("fulmen could not apply control messages; skipped")
                    backlog = []
        finally:
            try:
                self._reader.close()
            except Exception:
                logger.exception("fulmen control reader did not close cleanly")

    def _apply(
        self, messages: list[ControlMessage], backlog: list[VersionEvent]
    ) -> list[VersionEvent]:
        """Swap in what `messages` hold, or add it to `backlog` until caught up (then the
        whole backlog is one swap); returns the backlog still to apply."""
        events = [e for m in messages if (e := self._decode(m)) is not None]
        if self._caught_up.is_set():
            self._swap(events)
            return []
        backlog.extend(events)
        if not self._reader.caught_up():
            return backlog
        self._swap(backlog)
        self._caught_up.set()
        return []

    def _decode(self, message: ControlMessage) -> VersionEvent | None:
        return decode_version(self._codec, self._topic, message)

    def _swap(self, events: list[VersionEvent]) -> None:
        resources = self._versions.apply(events)
        if resources is not None:
            logger.info(
                "fulmen agent %r now runs model version %r, prompt version %r",
                self._versions.agent_name,
                resources.model_version,
                resources.resources_version,
            )

    def _report_failure(self, exc: Exception) -> None:
        if not self._failing:
            logger.warning(
                "fulmen cannot read the control topic %s (retrying): %s", self._topic, exc
            )
        self._failing = True

    def _report_recovery(self) -> None:
        if self._failing:
            logger.warning("fulmen reads the control topic %s again", self._topic)
        self._failing = False


def start_following(
    producer: Producer, *, versions: VersionState | None = None
) -> VersionFollower | None:
    """Follow the control topic for `producer`'s agent: on the bus of its in-process
    transport, or on the cluster its settings name when they say Kafka. None (nothing to
    follow) for any other transport. Versions are applied to `versions` (default: the
    producer's own)."""
    settings = producer.settings
    topic = settings.topics.for_event("version")
    reader: ControlReader
    if isinstance(producer.transport, InProcessTransport):
        reader = InProcessControlReader(producer.transport.bus, topic)
    elif settings.transport == "kafka":
        reader = KafkaControlReader(settings.kafka, topic)
    else:
        logger.info("fulmen does not follow versions: no control topic for this transport")
        return None
    target = producer.versions if versions is None else versions
    follower = VersionFollower(reader, producer.codec, target, topic=topic)
    follower.start()
    return follower


# -- the agent's side --------------------------------------------------------------------------


def resources() -> Resources:
    """The snapshot of the agent's resources in force now (configures the producer from the
    environment on first use, like a rollout does)."""
    return get_producer().versions.current


def prompt(name: str, default: str) -> str:
    """The template `name` of the prompt version in force, or `default` (the agent's own
    text, used until a prompt version that has `name` is applied)."""
    return resources().prompt(name, default)


def on_version(callback: VersionListener) -> Callable[[], None]:
    """Have `callback(resources)` called after every swap, with the snapshot now in force.

    Callbacks run on the follower's thread, in registration order, before `wait_for_version`
    callers wake; keep them short (a slow one delays the next swap). One that raises is
    logged. Registrations are process-wide and outlive `configure`; returns a function that
    unregisters `callback`.
    """
    return version_listeners.add(callback)


def wait_for_version(version_id: str, timeout_s: float = 30.0) -> Resources:
    """Wait until `version_id` is the model or prompt version in force and return that
    snapshot; raises `VersionNotInForce` after `timeout_s`."""
    return get_producer().versions.wait_for(version_id, timeout_s)
