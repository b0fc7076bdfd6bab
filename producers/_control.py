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
from collections.abc import Callable

import uuid_utils

from fulmen.errors import FulmenError
from fulmen.producers._control_readers import (
    ControlMessage,
    ControlReader,
    InProcessControlReader,
    KafkaControlReader,
)
from fulmen.producers._global import current_producer, get_producer, version_listeners
from fulmen.producers._producer import Producer, codec_for, transport_for
from fulmen.producers._resources import Resources, VersionListener, VersionState
from fulmen.producers._settings import FulmenSettings
from fulmen.producers.transport import InProcessBus, InProcessTransport, TransportFull
from fulmen.schemas import (
    Codec,
    ControlEvent,
    DecodeError,
    EventMeta,
    ReleaseDecision,
    ServingAck,
    VersionEvent,
)

logger = logging.getLogger("fulmen.producers")

CONTROL_KEY = b"fulmen.versions"
"""The key of every version message. One key puts every version in one partition of the
control topic, so every agent sees them in the same total order (per agent included): the
order in which they were published."""

_POLL_S = 0.25
_RETRY_S = 1.0
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
    """Put `event` on the control topic; return once it is delivered (see `publish_control`).

    With `traffic_share` below 1.0 the version starts as a canary on that share of its
    target's rollouts, beside the version in force (docs/versions.md).
    """
    publish_control(event, settings, bus=bus, timeout_s=timeout_s)


def publish_control(
    event: ControlEvent,
    settings: FulmenSettings | None = None,
    *,
    bus: InProcessBus | None = None,
    timeout_s: float = 30.0,
) -> None:
    """Put a control event (a version, a release decision, a serving replica's
    acknowledgement) on the control topic; return once it is delivered.

    `settings` say where: a trainer job passes its own; by default those of this process's
    configured producer, else the environment's (`FulmenSettings()`). On Kafka a producer of
    its own (idempotent, `acks=all`) sends it and waits for the acknowledgement, so nothing
    the agent emits is waited for. On the in-process transport it is appended to `bus`, by
    default the configured producer's bus.

    Every control event is keyed `CONTROL_KEY`: everyone reads them in publication order.
    Raises `VersionNotPublished` when the broker has not acknowledged it within `timeout_s`,
    when it cannot be encoded, or when the in-process transport has no bus to go to.
    """
    producer = current_producer()
    if settings is None:
        settings = producer.settings if producer is not None else FulmenSettings()
    name = _name_of(event)
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
        raise VersionNotPublished(f"cannot encode {name}: {exc}") from exc
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
        raise VersionNotPublished(f"{name} not queued: {exc}") from exc
    remaining = transport.flush(timeout_s + 2.0)
    if remaining:
        transport.purge()
    if failures or remaining:
        reason = failures[0] if failures else "no acknowledgement"
        raise VersionNotPublished(f"{name} not delivered to {topic} within {timeout_s} s: {reason}")
    logger.info("fulmen published %s on %s", name, topic)


def _name_of(event: ControlEvent) -> str:
    match event:
        case VersionEvent():
            return f"{event.kind} version {event.version_id}"
        case ReleaseDecision():
            return f"{event.action} decision on {event.version_id}"
        case ServingAck():
            return f"{event.replica_id}'s {event.status} of {event.version_id}"


# -- following -------------------------------------------------------------------------------


def decode_control(codec: Codec, topic: str, message: ControlMessage) -> ControlEvent | None:
    """The control event `message` holds; None, with a warning, for an undecodable message
    or an event that does not belong on the control topic."""
    where = f"{topic}[{message.partition}]@{message.offset}"
    try:
        event = codec.decode(message.value, topic=topic)
    except DecodeError as exc:
        logger.warning("fulmen skipped an undecodable control message at %s: %s", where, exc)
        return None
    if not isinstance(event, VersionEvent | ReleaseDecision | ServingAck):
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
        backlog: list[ControlEvent] = []
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
        self, messages: list[ControlMessage], backlog: list[ControlEvent]
    ) -> list[ControlEvent]:
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

    def _decode(self, message: ControlMessage) -> ControlEvent | None:
        return decode_control(self._codec, self._topic, message)

    def _swap(self, events: list[ControlEvent]) -> None:
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


def wait_for_version(
    version_id: str, timeout_s: float = 30.0, *, everywhere: bool = False
) -> Resources:
    """Wait until `version_id` is a model or prompt version in force — as a canary on some
    rollouts will do; with `everywhere`, on every rollout — and return the stable snapshot;
    raises `VersionNotInForce` after `timeout_s`."""
    return get_producer().versions.wait_for(version_id, timeout_s, everywhere=everywhere)
