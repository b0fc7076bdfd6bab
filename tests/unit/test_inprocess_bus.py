"""The in-process bus of the embedded default: offsets, waiting reads, bounded memory."""

from __future__ import annotations

import threading

import pytest

from fulmen.producers import InProcessBus, TransportFull


def test_offsets_and_reads() -> None:
    bus = InProcessBus()
    assert [bus.append("t", b"k", bytes([i])) for i in range(5)] == [0, 1, 2, 3, 4]
    assert [m.value for m in bus.read("t", 2, max_messages=2, timeout_s=0)] == [b"\x02", b"\x03"]
    assert bus.read("other", 0, max_messages=10, timeout_s=0) == []


def test_a_read_waits_for_the_next_message() -> None:
    bus = InProcessBus()
    threading.Timer(0.05, lambda: bus.append("t", b"k", b"late")).start()
    assert [m.value for m in bus.read("t", 0, max_messages=10, timeout_s=5)] == [b"late"]


def test_capacity_bounds_memory_until_released() -> None:
    bus = InProcessBus(capacity=3)
    for i in range(3):
        bus.append("t", b"k", bytes([i]))
    with pytest.raises(TransportFull):
        bus.append("t", b"k", b"x")
    bus.release("t", before_offset=2)
    assert bus.append("t", b"k", b"y") == 3
    assert [m.offset for m in bus.read("t", 0, max_messages=10, timeout_s=0)] == [2, 3]
