"""The spill's on-disk format: order, torn tails, budgets, segment order across runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from fulmen.producers._spill import Spill, SpilledMessage, SpillFull


def test_records_read_back_in_append_order(tmp_path: Path) -> None:
    spill = Spill(tmp_path, max_bytes=1 << 20, run_id=1)
    segment = spill.segment_for(0, "b")
    messages = [SpilledMessage("fulmen.spans", f"r{i}".encode(), bytes([i]) * i) for i in range(50)]
    for message in messages:
        spill.append(segment, message)
    spill.seal(segment)
    assert list(spill.read(segment)) == messages


def test_a_torn_tail_is_ignored(tmp_path: Path) -> None:
    spill = Spill(tmp_path, max_bytes=1 << 20, run_id=1)
    segment = spill.segment_for(0, "b")
    spill.append(segment, SpilledMessage("t", b"k", b"first"))
    spill.append(segment, SpilledMessage("t", b"k", b"second"))
    spill.seal(segment)
    segment.write_bytes(segment.read_bytes()[:-3])
    assert [m.value for m in spill.read(segment)] == [b"first"]


def test_budget_is_enforced_and_survives_restart(tmp_path: Path) -> None:
    spill = Spill(tmp_path, max_bytes=200, run_id=1)
    segment = spill.segment_for(0, "b")
    spill.append(segment, SpilledMessage("t", b"k", b"x" * 100))
    with pytest.raises(SpillFull):
        spill.append(segment, SpilledMessage("t", b"k", b"x" * 100))
    spill.close()
    assert Spill(tmp_path, max_bytes=200, run_id=2).size_bytes == spill.size_bytes


def test_segments_sort_in_emit_order_across_runs(tmp_path: Path) -> None:
    older_run = Spill(tmp_path, max_bytes=1 << 20, run_id=5)
    newer_run = Spill(tmp_path, max_bytes=1 << 20, run_id=6)
    names = [
        newer_run.segment_for(0, "b"),
        older_run.segment_for(10, "b"),
        older_run.segment_for(10, "a"),
        older_run.segment_for(2, "b"),
    ]
    for name in names:
        newer_run.append(name, SpilledMessage("t", b"k", b"v"))
    newer_run.close()
    assert newer_run.segments() == [names[3], names[2], names[1], names[0]]
