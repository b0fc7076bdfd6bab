"""The producer an instrumented process holds: identity, sequence numbers, versions in
force, and the emitter that delivers its events."""

from __future__ import annotations

import fcntl
import itertools
import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import IO

import uuid_utils

from fulmen.producers._emitter import Emitter
from fulmen.producers._emitter_stats import EmitterStats
from fulmen.producers._event_redaction import EventRedactor
from fulmen.producers._resources import Resources, VersionListeners, VersionState
from fulmen.producers._served import served_resources
from fulmen.producers._settings import FulmenSettings
from fulmen.producers._spill import Spill
from fulmen.producers.redaction import load_redactor
from fulmen.producers.transport import InProcessBus, InProcessTransport, Transport
from fulmen.schemas import (
    Codec,
    ConfluentCodec,
    EitherFramingCodec,
    Event,
    EventMeta,
    SingleObjectCodec,
)

logger = logging.getLogger(__name__)

_MISMATCH_WARNING_EVERY_S = 10.0


class Producer:
    """Stamps every event with the envelope (`EventMeta`) and emits it.

    One per process is the rule (see `fulmen.configure`). `producer_id` is new on each
    start, and `sequence` increases by one per event in emit order. `versions` holds the
    resources in force, starting from the settings' `model_version` and `resources_version`;
    a hot-swap replaces them (see `fulmen.producers.VersionFollower`), and every event
    stamped afterwards carries the new ids. `listeners` are told of those swaps.

    Raises:
        RedactorLoadError: `producer.redact` names no importable callable.
    """

    def __init__(
        self,
        settings: FulmenSettings,
        *,
        transport: Transport,
        codec: Codec | None = None,
        listeners: VersionListeners | None = None,
    ) -> None:
        self.settings = settings
        config = settings.producer
        self.agent_name = config.agent_name
        self.versions = VersionState(
            Resources(
                model_version=config.model_version, resources_version=config.resources_version
            ),
            agent_name=config.agent_name,
            listeners=listeners,
            await_replicas=config.await_replicas,
            pool=config.serving_pool,
        )
        self.transport = transport
        self.codec = codec or codec_for(settings)
        self.producer_id = f"{socket.gethostname()}-{os.getpid()}-{uuid_utils.uuid7().hex[-8:]}"
        self._sequence = itertools.count()
        self._mismatch_lock = threading.Lock()
        self._version_mismatches = 0
        self._mismatch_warned_at = -_MISMATCH_WARNING_EVERY_S
        redactor = None if config.redact is None else EventRedactor(load_redactor(config.redact))
        self._slot_lock, spill_dir = _claim_spill_slot(config.spill_dir)
        self.emitter = Emitter(
            transport,
            self.codec,
            settings.topics,
            Spill(spill_dir, max_bytes=config.spill_max_bytes, run_id=time.time_ns()),
            queue_max_events=config.queue_max_events,
            max_event_bytes=config.max_event_bytes,
            durability=config.durability,
            outage_spill_after_s=config.outage_spill_after_s,
            redactor=redactor,
        )

    def meta(
        self,
        rollout_id: str,
        attempt: int,
        *,
        agent_name: str | None = None,
        resources: Resources | None = None,
        model_version: str | None = None,
    ) -> EventMeta:
        """A fresh envelope: new event id, next sequence number, and the version ids of
        `resources` (default: the versions in force now). A caller that acted on a snapshot
        (the gateway, which chose the upstream model by it) passes that snapshot; one that
        knows which model versions served a rollout passes them as `model_version`."""
        # one snapshot: both ids come from the same swap
        resources = self.versions.current if resources is None else resources
        return EventMeta(
            event_id=str(uuid_utils.uuid7()),
            rollout_id=rollout_id,
            attempt=attempt,
            producer_id=self.producer_id,
            sequence=next(self._sequence),
            agent_name=self.agent_name if agent_name is None else agent_name,
            model_version=model_version or resources.model_version,
            resources_version=resources.resources_version,
            emitted_at_unix_nano=time.time_ns(),
        )

    def served(
        self,
        requested: Resources,
        response_model: str | None,
        *,
        versions: VersionState | None = None,
    ) -> Resources:
        """The snapshot that served a call made under `requested` whose response named
        `response_model` (see `served_resources`), by the model names of `versions`
        (default: this producer's); a version other than the one in force at the request
        counts in `version_mismatches`, with a warning at most every 10 s."""
        versions = versions or self.versions
        served = served_resources(
            requested,
            response_model,
            version_of_model=versions.version_of_model,
            base_version=versions.initial.model_version,
        )
        if served.model_version != requested.model_version:
            with self._mismatch_lock:
                self._version_mismatches += 1
                count = self._version_mismatches
                now = time.monotonic()
                warn = now - self._mismatch_warned_at >= _MISMATCH_WARNING_EVERY_S
                if warn:
                    self._mismatch_warned_at = now
            if warn:
                logger.warning(
                    "fulmen: version %r was in force, but %r answered the call (version %r); "
                    "the call is stamped with the version that served it (%d such calls)",
                    requested.model_version,
                    response_model,
                    served.model_version,
                    count,
                )
        return served

    @property
    def version_mismatches(self) -> int:
        """LLM calls answered by another model version than the one in force when they were
        made: an agent that does not request the version's model (see
        `ProducerSettings.openai_model_from_version`), or a server that fell back."""
        return self._version_mismatches

    @property
    def model_version(self) -> str:
        """The model version in force."""
        return self.versions.current.model_version

    @property
    def resources_version(self) -> str:
        """The prompt (resources) version in force."""
        return self.versions.current.resources_version

    def emit(self, event: Event) -> None:
        self.emitter.emit(event)

    def flush(self, timeout_s: float | None = None) -> bool:
        """Wait until everything emitted is delivered; False on timeout or when any event
        was lost since the previous flush (see `Emitter.flush`)."""
        return self.emitter.flush(self._timeout(timeout_s))

    def close(self, timeout_s: float | None = None) -> None:
        self.emitter.close(self._timeout(timeout_s))
        self._slot_lock.close()

    def stats(self) -> EmitterStats:
        """The delivery counters (see `EmitterStats`)."""
        return self.emitter.stats()

    def _timeout(self, timeout_s: float | None) -> float:
        return self.settings.producer.flush_timeout_s if timeout_s is None else timeout_s


def transport_for(settings: FulmenSettings, *, bus: InProcessBus | None = None) -> Transport:
    """The transport `settings` ask for (Kafka, or the in-process bus)."""
    if settings.transport == "inprocess":
        return InProcessTransport(bus or InProcessBus())
    from fulmen.kafka._transport import KafkaTransport

    return KafkaTransport(settings.kafka, producer_options=settings.producer.librdkafka_options())


def codec_for(settings: FulmenSettings) -> Codec:
    """The codec `settings` ask for: it writes the Confluent wire format with a registry, else
    Avro single-object encoding, and reads both (a registry-framed message needs the
    registry)."""
    registry = settings.schema_registry
    if registry is None:
        return EitherFramingCodec(SingleObjectCodec())
    conf = {}
    if registry.basic_auth_user_info is not None:
        conf["basic.auth.user.info"] = registry.basic_auth_user_info.get_secret_value()
    confluent = ConfluentCodec.from_url(registry.url, **conf)
    return EitherFramingCodec(confluent, registry=confluent)


def _claim_spill_slot(root: Path) -> tuple[IO[bytes], Path]:
    """Lock the first free `slot-N` under `root`. A restarted process gets the slot (and the
    spilled events) of the one that died; concurrent processes get slots of their own."""
    root.mkdir(parents=True, exist_ok=True)
    for slot in itertools.count():
        directory = root / f"slot-{slot}"
        directory.mkdir(exist_ok=True)
        lock = (directory / ".lock").open("wb")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            continue
        return lock, directory
    raise AssertionError("unreachable")
