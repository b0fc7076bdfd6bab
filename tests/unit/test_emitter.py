"""The emitter's delivery logic: spill while the transport is unavailable, re-send in order,
count drops, never raise into the caller."""

from __future__ import annotations

import errno
import logging
import time
from pathlib import Path

import pytest

from fulmen.kafka import TopicSettings
from fulmen.producers import Emitter, InProcessBus, InProcessTransport, TransportFull
from fulmen.producers._spill import Spill, SpilledMessage
from fulmen.schemas import SingleObjectCodec, Span
from tests.support.events import llm_span


class SwitchableTransport(InProcessTransport):
    """The in-process bus, with an off switch standing for an unreachable broker."""

    def __init__(self, bus: InProcessBus) -> None:
        super().__init__(bus)
        self.down = False

    def produce(self, topic: str, key: bytes, value: bytes) -> None:
        if self.down:
            raise TransportFull("switched off")
        super().produce(topic, key, value)


def _emitter(tmp_path: Path, transport: InProcessTransport, **kwargs) -> Emitter:
    spill = Spill(
        tmp_path / "spill",
        max_bytes=kwargs.pop("spill_bytes", 1 << 24),
        run_id=kwargs.pop("run", 1),
    )
    return Emitter(transport, SingleObjectCodec(), TopicSettings(), spill, **kwargs)


def _wait_until_sent(emitter: Emitter) -> None:
    """Until the sender has taken every queued event (to the transport or the spill)."""
    deadline = time.monotonic() + 30
    while emitter.stats().queued and time.monotonic() < deadline:
        time.sleep(0.005)


def _sequences(bus: InProcessBus) -> list[int]:
    codec = SingleObjectCodec()
    return [
        codec.decode(m.value, topic="fulmen.spans").meta.sequence
        for m in bus.read("fulmen.spans", 0, max_messages=1_000_000, timeout_s=0)
    ]


def test_outage_spills_then_resends_everything_in_order(tmp_path: Path) -> None:
    bus = InProcessBus()
    transport = SwitchableTransport(bus)
    emitter = _emitter(tmp_path, transport, drain_retry_s=0.01)
    for i in range(100):
        emitter.emit(llm_span(sequence=i))
    assert emitter.flush(5)
    transport.down = True
    for i in range(100, 300):
        emitter.emit(llm_span(sequence=i))
    _wait_until_sent(emitter)
    assert emitter.stats().spilled == 200
    transport.down = False
    for i in range(300, 400):
        emitter.emit(llm_span(sequence=i))
    assert emitter.flush(5)
    emitter.close(1)
    assert _sequences(bus) == list(range(400))
    stats = emitter.stats()
    assert (stats.emitted, stats.dropped) == (400, 0)
    # 300-399 were spilled too if they arrived before the spill was drained, else sent directly
    assert 200 <= stats.resent <= 300


def test_spilled_events_are_resent_by_the_next_process(tmp_path: Path) -> None:
    transport = SwitchableTransport(InProcessBus())
    transport.down = True
    first = _emitter(tmp_path, transport, run=1)
    for i in range(50):
        first.emit(llm_span(sequence=i))
    first.close(0.5)
    assert first.stats().spilled == 50

    bus = InProcessBus()
    second = _emitter(tmp_path, InProcessTransport(bus), run=2)
    for i in range(50, 60):
        second.emit(llm_span(sequence=i))
    assert second.flush(5)
    second.close(1)
    assert _sequences(bus) == list(range(60))


def test_full_queue_and_full_spill_drop_and_count_without_raising(tmp_path: Path) -> None:
    transport = SwitchableTransport(InProcessBus())
    transport.down = True
    emitter = _emitter(tmp_path, transport, spill_bytes=5_000)
    for i in range(100):
        emitter.emit(llm_span(sequence=i))
    _wait_until_sent(emitter)
    stats = emitter.stats()
    assert stats.spilled + stats.dropped == 100
    assert stats.dropped > 0
    emitter.close(0.2)
    emitter.emit(llm_span(sequence=101))  # after close: counted, not raised
    assert emitter.stats().dropped == stats.dropped + 1


def test_an_unencodable_event_is_lost_alone(tmp_path: Path) -> None:
    bus = InProcessBus()
    emitter = _emitter(tmp_path, InProcessTransport(bus))
    too_big = llm_span(sequence=1).model_copy(
        update={"meta": llm_span().meta.model_copy(update={"sequence": 2**64})}
    )
    for event in (llm_span(sequence=0), too_big, llm_span(sequence=2)):
        emitter.emit(event)
    assert not emitter.flush(5)  # delivered what it could, and says one was lost
    emitter.close(1)
    assert _sequences(bus) == [0, 2]
    assert (emitter.stats().failed, emitter.stats().dropped) == (1, 0)


class RefusingTransport(InProcessTransport):
    """The in-process bus whose `produce` raises an unexpected error for chosen values."""

    def __init__(self, bus: InProcessBus, refuse: set[int]) -> None:
        super().__init__(bus)
        self._refuse = refuse
        self._calls = 0

    def produce(self, topic: str, key: bytes, value: bytes) -> None:
        call, self._calls = self._calls, self._calls + 1
        if call in self._refuse:
            raise RuntimeError("Broker: Message size too large")
        super().produce(topic, key, value)


class HoldingTransport(InProcessTransport):
    """A broker that can go away: while `down`, produced messages wait (pending), as in
    librdkafka's buffer; `purge` reports each as failed; when `up`, `poll` delivers them.
    `permanent` refuses the values containing it for good, as the broker does with an
    invalid or oversize record."""

    def __init__(self, bus: InProcessBus) -> None:
        super().__init__(bus)
        self.down = False
        self.slow = False
        """Reachable, but acknowledging nothing (a coordinator still loading)."""
        self.permanent: bytes | None = None
        self.held: list[tuple[str, bytes, bytes]] = []

    def produce(self, topic: str, key: bytes, value: bytes) -> None:
        self.held.append((topic, key, value))

    def unreachable(self) -> bool:
        return self.down

    def poll(self, timeout_s: float) -> None:
        if self.down or self.slow:
            return
        held, self.held = self.held, []
        for topic, key, value in held:
            if self.permanent is not None and self.permanent in value:
                self.report_failure(topic, key, value, "INVALID_RECORD", permanent=True)
            else:
                self.bus.append(topic, key, value)

    def pending(self) -> int:
        return len(self.held)

    def flush(self, timeout_s: float) -> int:
        self.poll(0)
        return len(self.held)

    def purge(self) -> None:
        held, self.held = self.held, []
        for topic, key, value in held:
            self.report_failure(topic, key, value, "Purged in queue")


def _big_span(sequence: int) -> Span:
    span = llm_span(sequence=sequence)
    assert span.llm is not None
    return span.model_copy(
        update={"llm": span.llm.model_copy(update={"input_messages": "x" * 5000})}
    )


def test_an_oversize_event_in_a_batch_is_refused_alone_and_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bus = InProcessBus()
    emitter = _emitter(tmp_path, InProcessTransport(bus), max_event_bytes=4000)
    assert emitter.flush(5)
    for i in range(401):  # one batch of 512: the big one in its middle
        emitter.emit(_big_span(i) if i == 200 else llm_span(sequence=i))
    with caplog.at_level(logging.WARNING, logger="fulmen.producers"):
        assert not emitter.flush(5)  # everything settled, but one event was refused
    assert emitter.flush(5)  # a loss is reported once
    emitter.close(1)
    assert _sequences(bus) == [i for i in range(401) if i != 200]
    stats = emitter.stats()
    assert (stats.emitted, stats.delivered, stats.oversize, stats.failed) == (401, 400, 1, 0)
    assert (stats.dropped, stats.lost) == (0, 1)
    (warning,) = [r.getMessage() for r in caplog.records if "max_event_bytes" in r.getMessage()]
    assert "span event of rollout 'rollout-1'" in warning
    assert "max_event_bytes=4000" in warning


def test_a_transport_raising_for_one_event_loses_only_that_event(tmp_path: Path) -> None:
    bus = InProcessBus()
    emitter = _emitter(tmp_path, RefusingTransport(bus, refuse={3, 250}))
    for i in range(300):
        emitter.emit(llm_span(sequence=i))
    assert not emitter.flush(5)
    emitter.close(1)
    assert _sequences(bus) == [i for i in range(300) if i not in (3, 250)]
    stats = emitter.stats()
    assert (stats.delivered, stats.failed, stats.spilled, stats.lost) == (298, 2, 0, 2)


def test_flush_is_false_after_drops_until_a_clean_interval(tmp_path: Path) -> None:
    transport = HoldingTransport(InProcessBus())
    emitter = _emitter(tmp_path, transport, queue_max_events=10)
    transport.down = True
    for i in range(50):  # the queue holds 10: some are dropped
        emitter.emit(llm_span(sequence=i))
    transport.down = False
    assert not emitter.flush(5)
    assert emitter.stats().dropped > 0
    emitter.emit(llm_span(sequence=50))
    assert emitter.flush(5)
    transport.down = True
    emitter.emit(llm_span(sequence=51))
    assert not emitter.flush(0.05)  # timeout: still pending
    transport.down = False
    assert emitter.flush(5)
    emitter.close(1)


def test_a_permanent_delivery_failure_is_counted_not_spilled(tmp_path: Path) -> None:
    bus = InProcessBus()
    transport = HoldingTransport(bus)
    transport.permanent = b"poison"
    emitter = _emitter(tmp_path, transport)
    poison = llm_span(sequence=1)
    assert poison.llm is not None
    poison = poison.model_copy(
        update={"llm": poison.llm.model_copy(update={"input_messages": "poison"})}
    )
    for event in (llm_span(sequence=0), poison, llm_span(sequence=2)):
        emitter.emit(event)
    assert not emitter.flush(5)
    emitter.close(1)
    assert _sequences(bus) == [0, 2]
    stats = emitter.stats()
    assert (stats.failed, stats.retried, stats.spilled) == (1, 0, 0)


def test_spill_on_outage_moves_waiting_events_to_disk_then_resends_in_order(
    tmp_path: Path,
) -> None:
    bus = InProcessBus()
    transport = HoldingTransport(bus)
    emitter = _emitter(
        tmp_path,
        transport,
        durability="spill_on_outage",
        outage_spill_after_s=0.2,
        drain_retry_s=0.01,
    )
    transport.down = True
    for i in range(100):
        emitter.emit(llm_span(sequence=i))
    deadline = time.monotonic() + 10
    while emitter.stats().spilled < 100 and time.monotonic() < deadline:
        time.sleep(0.01)
    stats = emitter.stats()
    assert (stats.spilled, stats.retried, stats.pending) == (100, 100, 0)
    for i in range(100, 150):  # during the outage: straight to the spill
        emitter.emit(llm_span(sequence=i))
    _wait_until_sent(emitter)
    assert emitter.stats().spilled >= 150
    assert list((tmp_path / "spill").glob("*.spill"))
    transport.down = False
    assert emitter.flush(10), emitter.stats()
    emitter.close(1)
    assert _sequences(bus) == list(range(150))
    assert emitter.stats().lost == 0


def test_a_slow_broker_that_is_reachable_is_waited_for_not_spilled(tmp_path: Path) -> None:
    transport = HoldingTransport(InProcessBus())
    emitter = _emitter(tmp_path, transport, outage_spill_after_s=0.05)
    transport.slow = True
    for i in range(20):
        emitter.emit(llm_span(sequence=i))
    time.sleep(0.3)
    assert (emitter.stats().pending, emitter.stats().spilled) == (20, 0)
    transport.slow = False
    assert emitter.flush(5)
    emitter.close(1)


def test_memory_durability_keeps_waiting_events_in_the_transport(tmp_path: Path) -> None:
    transport = HoldingTransport(InProcessBus())
    emitter = _emitter(tmp_path, transport, durability="memory", outage_spill_after_s=0.05)
    transport.down = True
    for i in range(20):
        emitter.emit(llm_span(sequence=i))
    time.sleep(0.3)
    assert (emitter.stats().pending, emitter.stats().spilled) == (20, 0)
    transport.down = False
    assert emitter.flush(5)
    emitter.close(1)


def test_write_ahead_spills_every_event_before_producing_it(tmp_path: Path) -> None:
    bus = InProcessBus()
    transport = HoldingTransport(bus)
    emitter = _emitter(tmp_path, transport, durability="write_ahead", drain_retry_s=0.01)
    transport.down = True
    for i in range(100):
        emitter.emit(llm_span(sequence=i))
    _wait_until_sent(emitter)
    time.sleep(0.05)
    # On disk, synced, although the transport has not delivered anything.
    on_disk = [
        m
        for segment in Spill(tmp_path / "spill", max_bytes=1 << 30, run_id=9).segments()
        for m in Spill(tmp_path / "spill", max_bytes=1 << 30, run_id=9).read(segment)
    ]
    assert len(on_disk) == 100
    transport.down = False
    for i in range(100, 200):
        emitter.emit(llm_span(sequence=i))
    assert emitter.flush(10), emitter.stats()
    emitter.close(1)
    assert _sequences(bus) == list(range(200))
    stats = emitter.stats()
    assert (stats.spilled, stats.resent, stats.delivered, stats.lost) == (200, 200, 200, 0)
    assert not list((tmp_path / "spill").glob("*.spill"))


class FullDisk(Spill):
    """A spill on a disk with no space left."""

    def append(self, segment: Path, message: SpilledMessage) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")


def test_a_spill_that_cannot_be_written_drops_and_counts_without_losing_the_batch(
    tmp_path: Path,
) -> None:
    bus = InProcessBus()
    transport = SwitchableTransport(bus)
    spill = FullDisk(tmp_path / "spill", max_bytes=1 << 30, run_id=1)
    emitter = Emitter(transport, SingleObjectCodec(), TopicSettings(), spill, drain_retry_s=0.01)
    transport.down = True
    for i in range(10):
        emitter.emit(llm_span(sequence=i))
    _wait_until_sent(emitter)
    assert emitter.stats().dropped == 10
    transport.down = False
    for i in range(10, 20):
        emitter.emit(llm_span(sequence=i))
    assert not emitter.flush(5)
    emitter.close(1)
    assert _sequences(bus) == list(range(10, 20))
    assert (emitter.stats().dropped, emitter.stats().lost) == (10, 10)


class SlowRemoval(Spill):
    """A spill whose sender thread is descheduled right after a drained segment goes."""

    def remove(self, segment: Path) -> None:
        super().remove(segment)
        time.sleep(0.3)


def test_the_counters_after_a_flush_include_every_resent_event(tmp_path: Path) -> None:
    transport = SwitchableTransport(InProcessBus())
    transport.down = True
    first = _emitter(tmp_path, transport, run=1)
    for i in range(50):
        first.emit(llm_span(sequence=i))
    first.close(0.5)
    assert first.stats().spilled == 50

    spill = SlowRemoval(tmp_path / "spill", max_bytes=1 << 24, run_id=2)
    second = Emitter(
        InProcessTransport(InProcessBus()), SingleObjectCodec(), TopicSettings(), spill
    )
    assert second.flush(5)
    assert second.stats().resent == 50  # counted before the spill looked empty to `flush`
    second.close(1)
