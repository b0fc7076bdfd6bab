"""The emitter's delivery logic: spill while the transport is unavailable, re-send in order,
count drops, never raise into the caller."""

from __future__ import annotations

import time
from pathlib import Path

from fulmen.kafka import TopicSettings
from fulmen.producers import Emitter, InProcessBus, InProcessTransport, TransportFull
from fulmen.producers._spill import Spill
from fulmen.schemas import SingleObjectCodec
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


def test_an_unencodable_event_is_dropped_alone(tmp_path: Path) -> None:
    bus = InProcessBus()
    emitter = _emitter(tmp_path, InProcessTransport(bus))
    too_big = llm_span(sequence=1).model_copy(
        update={"meta": llm_span().meta.model_copy(update={"sequence": 2**64})}
    )
    for event in (llm_span(sequence=0), too_big, llm_span(sequence=2)):
        emitter.emit(event)
    assert emitter.flush(5)
    emitter.close(1)
    assert _sequences(bus) == [0, 2]
    assert emitter.stats().dropped == 1
