"""The emitter: hands events from the agent's threads to a transport without ever blocking
them, spilling to disk whatever the transport cannot take, and re-sending it in order."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from fulmen.kafka import TopicSettings
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
_DROP_WARNING_EVERY_S = 10.0
# Segments are read whole when re-sent; rotating bounds that memory.
_SEGMENT_BYTES = 64 << 20


@dataclass(frozen=True)
class EmitterStats:
    """Counters since the emitter started.

    `emitted` counts events `emit` accepted; `dropped` those it refused (queue full, closed)
    plus those the spill had no room for. `delivered` excludes what is still `pending` in the
    transport; `queued` is what the sender has not taken yet; `resent` came from the spill.
    """

    emitted: int
    delivered: int
    pending: int
    queued: int
    spilled: int
    resent: int
    failed: int
    dropped: int
    spill_bytes: int


class Emitter:
    """Bounded hand-off from agent threads to one sender thread.

    `emit` costs a deque append on the caller's thread. The sender encodes, produces, and —
    when the transport is full or reports failures — appends to the spill, which it drains
    back in order once the transport has delivered everything older. Events are dropped
    (counted, with a warning, never an exception) only when the queue is full or the spill
    is over budget.
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
    ) -> None:
        self._transport = transport
        self._codec = codec
        self._topic_of = {event_type: topics.for_event(event_type) for event_type in EVENT_MODELS}
        self._spill = spill
        self._queue: deque[Event] = deque()
        self._queue_max = queue_max_events
        self._drain_retry_s = drain_retry_s
        self._wake = threading.Event()
        self._idle = False
        self._closing = False
        self._closed = threading.Event()
        self._flush_deadline = 0.0
        # Counters written by the sender thread only; `emitted` is derived from them, so agent
        # threads never do a read-modify-write that another thread could interleave.
        self._taken = self._handed = self._spilled = self._resent = 0
        self._failed = self._in_hand = 0
        self._drops = threading.Lock()
        self._dropped = 0
        self._last_drop_warning = 0.0
        # Spill state, owned by the sender thread.
        self._next_index = 0
        self._active: Path | None = None
        self._failures: Path | None = None
        self._draining: _SegmentDrain | None = None
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
        """Wait until every emitted event is delivered (spill included); False on timeout."""
        deadline = time.monotonic() + timeout_s
        self._next_drain_at = 0.0
        self._wake.set()
        while time.monotonic() < deadline:
            if self._settled():
                return True
            time.sleep(0.002)
        return self._settled()

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
            delivered=self._handed - self._failed - pending,
            pending=pending,
            queued=queued + self._in_hand,
            spilled=self._spilled,
            resent=self._resent,
            failed=self._failed,
            dropped=self._dropped,
            spill_bytes=self._spill.size_bytes,
        )

    # -- sender thread -------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            try:
                worked = self._step()
            except Exception:  # the sender must outlive any single bad event or I/O error
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
            self._send(event)
        self._in_hand = 0
        self._transport.poll(0)
        drained = self._drain_some() if self._active is not None else False
        return bool(batch) or drained

    def _take(self) -> list[Event]:
        batch: list[Event] = []
        with contextlib.suppress(IndexError):
            while len(batch) < _BATCH:
                batch.append(self._queue.popleft())
        self._in_hand = len(batch)
        self._taken += len(batch)
        return batch

    def _send(self, event: Event) -> None:
        index = self._next_index
        self._next_index += 1
        topic = self._topic_of[event.event_type]
        key = event.meta.rollout_id.encode()
        try:
            value = self._codec.encode(event, topic=topic)
        except Exception as exc:  # e.g. an int beyond Avro's long: this event only is lost
            self._drop(f"cannot encode {event.event_type}: {exc}")
            return
        if self._active is None:
            try:
                self._transport.produce(topic, key, value)
                self._handed += 1
                return
            except TransportFull:
                self._enter_spill_mode(first_index=index)
        assert self._active is not None
        if self._spill.open_size(self._active) >= _SEGMENT_BYTES:
            self._active = self._spill.segment_for(index, "b")
        self._spill_append(self._active, SpilledMessage(topic, key, value))

    def _on_failure(self, topic: str, key: bytes, value: bytes, reason: str) -> None:
        self._failed += 1
        if self._draining is not None:
            self._draining.failed = reason  # the segment is kept and re-sent whole
            return
        if self._active is None:
            self._enter_spill_mode()
        assert self._failures is not None
        self._spill_append(self._failures, SpilledMessage(topic, key, value))

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

    def _drain_some(self) -> bool:
        """Re-send spilled segments, oldest first, once everything older is delivered."""
        if self._draining is None and not self._start_drain():
            return False
        drain = self._draining
        assert drain is not None
        while (message := drain.next_message()) is not None:
            try:
                self._transport.produce(message.topic, message.key, message.value)
            except TransportFull:
                drain.push_back(message)
                return True
            drain.sent += 1
            self._handed += 1
        if self._transport.pending() > 0:
            return False
        self._draining = None
        if drain.failed is not None:
            self._next_drain_at = time.monotonic() + self._drain_retry_s
            return False
        self._spill.remove(drain.segment)
        self._resent += drain.sent
        if not self._spill.segments():
            self._active = self._failures = None
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
        self._spill.seal(oldest)
        self._draining = _SegmentDrain(oldest, self._spill.read(oldest))
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
            now = time.monotonic()
            if now - self._last_drop_warning < _DROP_WARNING_EVERY_S:
                return
            self._last_drop_warning = now
        logger.warning("fulmen dropped events (%s); %d dropped so far", reason, self._dropped)


class _SegmentDrain:
    """A spill segment being re-sent; `failed` is set when any of it was not delivered."""

    def __init__(self, segment: Path, records: Iterator[SpilledMessage]) -> None:
        self.segment = segment
        self._records = records
        self._pushed_back: SpilledMessage | None = None
        self.sent = 0
        self.failed: str | None = None

    def next_message(self) -> SpilledMessage | None:
        if self._pushed_back is not None:
            message, self._pushed_back = self._pushed_back, None
            return message
        return next(self._records, None)

    def push_back(self, message: SpilledMessage) -> None:
        self._pushed_back = message
