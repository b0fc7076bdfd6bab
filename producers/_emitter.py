"""The emitter: hands events from the agent's threads to a transport without ever blocking
them, spilling to disk whatever the transport cannot take, and re-sending it in order."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from pathlib import Path

from fulmen.kafka import TopicSettings
from fulmen.producers._emitter_stats import EmitterStats
from fulmen.producers._event_redaction import EventRedactor
from fulmen.producers._resend import SegmentDrain
from fulmen.producers._settings import Durability
from fulmen.producers._spill import Spill, SpilledMessage, SpillFull
from fulmen.producers.transport import Transport, TransportFull
from fulmen.schemas import EVENT_MODELS, Codec, Event

logger = logging.getLogger("fulmen.producers")

_BATCH = 512
_IDLE_WAIT_S = 0.005
# With nothing in flight and nothing spilled there are no delivery reports to poll for; the
# sender sleeps until an emit wakes it. Every wake-up takes the GIL, and in the gateway one
# every 5 ms landed on requests in progress (docs/gateway.md).
_QUIET_WAIT_S = 1.0
_WARNING_EVERY_S = 10.0
# Segments are read whole when re-sent; rotating bounds that memory.
_SEGMENT_BYTES = 64 << 20


class Emitter:
    """Bounded hand-off from agent threads to one sender thread.

    `emit` costs a deque append on the caller's thread. The sender encodes, refuses events
    over `max_event_bytes`, produces, and — when the transport is full or reports failures
    — appends to the spill, which it drains back in order once the transport has delivered
    everything older. `durability` (see `ProducerSettings.durability`) decides whether
    events also go to the spill during an outage (`spill_on_outage`, after
    `outage_spill_after_s` without delivery progress) or always (`write_ahead`). A failure
    with one event (encoding, size, the transport refusing it) loses that event only, and
    is counted; nothing raises into the caller.

    With a `redactor`, the sender redacts each event before it encodes it: no unredacted
    text reaches the transport or the spill. An event whose redaction raises is lost
    (counted in `failed`, logged without its content): fail closed.
    """

    def __init__(
        self,
        transport: Transport,
        codec: Codec,
        topics: TopicSettings,
        spill: Spill,
        *,
        queue_max_events: int = 100_000,
        drain_retry_s: float = 1.0,
        max_event_bytes: int = 1_000_000,
        durability: Durability = "spill_on_outage",
        outage_spill_after_s: float = 5.0,
        redactor: EventRedactor | None = None,
    ) -> None:
        self._transport = transport
        self._codec = codec
        self._topic_of = {event_type: topics.for_event(event_type) for event_type in EVENT_MODELS}
        self._spill = spill
        self._queue: deque[Event] = deque()
        self._queue_max = queue_max_events
        self._drain_retry_s = drain_retry_s
        self._max_event_bytes = max_event_bytes
        self._durability = durability
        self._outage_after_s = outage_spill_after_s
        self._redactor = redactor
        self._wake = threading.Event()
        self._idle = False
        self._closing = False
        self._closed = threading.Event()
        self._flush_deadline = 0.0
        # Counters written by the sender thread only; `emitted` is derived from them, so agent
        # threads never do a read-modify-write that another thread could interleave.
        self._taken = self._handed = self._spilled = self._resent = 0
        self._reported = self._retried = self._failed = self._oversize = self._in_hand = 0
        self._drops = threading.Lock()
        self._dropped = 0
        self._last_warning: dict[str, float] = {}
        self._flushes = threading.Lock()
        self._lost_at_flush = 0
        # Delivery progress, for `spill_on_outage` (sender thread).
        self._progress_at = time.monotonic()
        self._last_delivered = 0
        # Spill state, owned by the sender thread.
        self._next_index = 0
        self._active: Path | None = None
        self._failures: Path | None = None
        self._draining: SegmentDrain | None = None
        self._next_drain_at = 0.0
        transport.listen(self._on_failure)
        if spill.segments():
            self._enter_spill_mode()
        self._sender = threading.Thread(target=self._run, name="fulmen-emitter", daemon=True)
        self._sender.start()

    def emit(self, event: Event) -> None:
        """Queue `event` for delivery. Never blocks, never raises."""
        if self._closing or len(self._queue) >= self._queue_max:
            self._drop("emitter closed" if self._closing else "queue full")
            return
        self._queue.append(event)
        if self._idle:
            self._wake.set()

    def flush(self, timeout_s: float) -> bool:
        """Wait up to `timeout_s` until every event emitted so far is delivered.

        True when, as it returns, nothing is queued, pending in the transport or in the
        spill, and no event was lost (`oversize`, `failed` or `dropped` in `stats`) since
        the previous `flush` returned (or since the emitter started). False on timeout, or
        when any event was lost in that interval — also one emitted by another thread while
        this call waited. A False because of a loss is reported once: the next `flush`
        starts a new interval.
        """
        deadline = time.monotonic() + timeout_s
        self._next_drain_at = 0.0
        self._wake.set()
        settled = self._settled()
        while not settled and time.monotonic() < deadline:
            time.sleep(0.002)
            settled = self._settled()
        with self._flushes:
            lost = self.stats().lost
            clean = lost == self._lost_at_flush
            self._lost_at_flush = lost
        return settled and clean

    def close(self, timeout_s: float) -> None:
        """Deliver what can be delivered within `timeout_s`, spill the rest, stop."""
        if self._closing:
            self._closed.wait(timeout_s)
            return
        self._flush_deadline = time.monotonic() + timeout_s
        self._closing = True
        self._wake.set()
        self._closed.wait(timeout_s + 5.0)

    def stats(self) -> EmitterStats:
        pending = self._transport.pending()
        queued = len(self._queue)
        return EmitterStats(
            emitted=self._taken + queued,
            delivered=self._handed - self._reported - pending,
            pending=pending,
            queued=queued + self._in_hand,
            spilled=self._spilled,
            resent=self._resent,
            retried=self._retried,
            failed=self._failed,
            oversize=self._oversize,
            dropped=self._dropped,
            spill_bytes=self._spill.size_bytes,
            redacted={} if self._redactor is None else self._redactor.counts(),
        )

    # -- sender thread -------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            try:
                worked = self._step()
            except Exception:  # the sender must outlive any I/O error
                logger.exception("fulmen emitter step failed")
                worked = False
            if self._closing and not self._queue:
                break
            if not worked:
                self._idle = True
                if not self._queue:
                    self._wake.wait(_IDLE_WAIT_S if self._awaiting() else _QUIET_WAIT_S)
                self._wake.clear()
                self._idle = False
        self._shutdown()

    def _awaiting(self) -> bool:
        """Whether the transport or the spill has something to follow up on soon."""
        return self._active is not None or self._transport.pending() > 0

    def _step(self) -> bool:
        batch = self._take()
        for event in batch:
            try:
                self._send(event)
            except Exception as exc:  # this event only: the rest of the batch goes on
                self._fail(f"cannot send {_describe(event)}: {exc!r}")
            self._in_hand -= 1
        self._transport.poll(0)
        if self._durability == "spill_on_outage":
            self._watch_progress()
        drained = self._drain_some() if self._active is not None else False
        return bool(batch) or drained

    def _take(self) -> list[Event]:
        batch: list[Event] = []
        while len(batch) < _BATCH and self._queue:
            self._in_hand += 1  # before the queue looks shorter, so `_settled` never misses it
            batch.append(self._queue.popleft())
        self._taken += len(batch)
        return batch

    def _send(self, event: Event) -> None:
        index = self._next_index
        self._next_index += 1
        topic = self._topic_of[event.event_type]
        key = event.meta.rollout_id.encode()
        if self._redactor is not None:
            try:
                event = self._redactor.redact(event)
            except Exception as exc:  # fail closed: this event only is lost, never sent raw
                self._fail(f"the redactor failed on {_describe(event)}: {type(exc).__name__}")
                return
        try:
            value = self._codec.encode(event, topic=topic)
        except Exception as exc:  # e.g. an int beyond Avro's long: this event only is lost
            self._fail(f"cannot encode {_describe(event)}: {exc}")
            return
        if len(value) > self._max_event_bytes:
            self._oversize += 1
            self._warn(
                "oversize",
                "fulmen refused %s: %d bytes encoded, over max_event_bytes=%d (%d refused so far)",
                _describe(event),
                len(value),
                self._max_event_bytes,
                self._oversize,
            )
            return
        if self._active is None and self._durability == "write_ahead":
            self._active = self._spill.segment_for(index, "b")
            self._failures = self._spill.segment_for(index, "a")
        if self._active is None:
            try:
                self._transport.produce(topic, key, value)
            except TransportFull:
                self._enter_spill_mode(first_index=index)
            except Exception as exc:  # the transport refused this one message
                self._fail(f"the transport refused {_describe(event)}: {exc}")
                return
            else:
                self._handed += 1
                return
        assert self._active is not None
        if self._spill.open_size(self._active) >= _SEGMENT_BYTES:
            self._active = self._spill.segment_for(index, "b")
        self._spill_append(self._active, SpilledMessage(topic, key, value))

    def _on_failure(
        self, topic: str, key: bytes, value: bytes, reason: str, permanent: bool
    ) -> None:
        self._reported += 1
        if permanent:
            self._fail(f"the broker refused a message for {topic} (key {key!r}): {reason}")
            return
        self._retried += 1
        if self._draining is not None:
            self._draining.failed = reason  # the segment is kept and re-sent whole
            return
        if self._active is None:
            self._enter_spill_mode()
        assert self._failures is not None
        self._spill_append(self._failures, SpilledMessage(topic, key, value))

    def _watch_progress(self) -> None:
        """`spill_on_outage`: when nothing pending has been delivered for
        `outage_spill_after_s` and the transport can reach no broker, purge the transport;
        each purged message is reported failed and goes to the spill, and so do new events
        until the spill is drained. A broker that is up but slow is waited for."""
        now = time.monotonic()
        pending = self._transport.pending()
        delivered = self._handed - self._reported - pending
        if pending == 0 or delivered != self._last_delivered:
            self._last_delivered = delivered
            self._progress_at = now
            return
        if now - self._progress_at < self._outage_after_s or not self._transport.unreachable():
            return
        logger.warning(
            "fulmen: nothing delivered for %.1f s; moving %d waiting events to the spill %s",
            now - self._progress_at,
            pending,
            self._spill.directory,
        )
        self._progress_at = now
        # Probe the broker again (by re-sending the oldest segment) only after as long.
        self._next_drain_at = now + self._outage_after_s
        if self._active is None:
            self._enter_spill_mode()
        self._transport.purge()

    def _enter_spill_mode(self, *, first_index: int | None = None) -> None:
        index = self._next_index if first_index is None else first_index
        self._active = self._spill.segment_for(index, "b")
        self._failures = self._spill.segment_for(index, "a")
        logger.warning("fulmen transport unavailable; spilling events to %s", self._spill.directory)

    def _spill_append(self, segment: Path, message: SpilledMessage) -> None:
        try:
            self._spill.append(segment, message)
            self._spilled += 1
        except SpillFull:
            self._drop("spill full")
        except OSError as exc:  # disk full, read-only, gone: this event is lost, counted
            self._drop(f"cannot write the spill: {exc}")

    def _drain_some(self) -> bool:
        """Re-send spilled segments, oldest first, once everything older is delivered."""
        if self._draining is None and not self._start_drain():
            return False
        drain = self._draining
        assert drain is not None
        sent_before = drain.sent
        finished = drain.send(self._transport, self._fail)
        self._handed += drain.sent - sent_before
        if not finished:
            return True
        if self._transport.pending() > 0:
            return False
        self._draining = None
        if drain.failed is not None:
            self._next_drain_at = max(self._next_drain_at, time.monotonic() + self._drain_retry_s)
            return False
        # Counted before the segment goes: `flush` returns once no segment is left, and its
        # caller's `stats()` must already show the resend.
        self._resent += drain.sent
        self._spill.remove(drain.segment)
        if not self._spill.segments():
            self._active = self._failures = None
            if self._durability != "write_ahead":
                logger.warning("fulmen transport back; spill drained")
        return True

    def _start_drain(self) -> bool:
        if time.monotonic() < self._next_drain_at or self._transport.pending() > 0:
            return False
        segments = self._spill.segments()
        if not segments:
            self._active = self._failures = None
            return False
        oldest = segments[0]
        if oldest in (self._active, self._failures):
            # Newer events keep arriving: they go to fresh segments sorting after this one.
            self._active = self._spill.segment_for(self._next_index, "b")
            self._failures = self._spill.segment_for(self._next_index, "a")
        self._spill.seal(oldest)  # synced to disk before any of it is produced
        self._draining = SegmentDrain(oldest, self._spill.read(oldest))
        return True

    def _settled(self) -> bool:
        return (
            not self._queue
            and self._in_hand == 0
            and self._transport.pending() == 0
            and not self._spill.segments()
        )

    def _shutdown(self) -> None:
        try:
            remaining = max(0.0, self._flush_deadline - time.monotonic())
            while remaining > 0 and self._drain_some():
                remaining = max(0.0, self._flush_deadline - time.monotonic())
            self._transport.flush(remaining)
            if self._draining is not None and self._transport.pending() == 0:
                self._drain_some()
            self._transport.purge()
            self._spill.close()
        finally:
            self._closed.set()

    def _drop(self, reason: str) -> None:
        with self._drops:
            self._dropped += 1
        self._warn("drop", "fulmen dropped events (%s); %d dropped so far", reason, self._dropped)

    def _fail(self, reason: str) -> None:
        """Sender thread: one event is lost for good."""
        self._failed += 1
        self._warn("fail", "fulmen lost an event: %s (%d failed so far)", reason, self._failed)

    def _warn(self, kind: str, message: str, *args: object) -> None:
        """At most one warning of each kind every 10 s."""
        with self._drops:
            now = time.monotonic()
            if now - self._last_warning.get(kind, -_WARNING_EVERY_S) < _WARNING_EVERY_S:
                return
            self._last_warning[kind] = now
        logger.warning(message, *args)


def _describe(event: Event) -> str:
    return f"a {event.event_type} event of rollout {event.meta.rollout_id!r}"
