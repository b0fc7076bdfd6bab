"""The worker's garbage-collector settings (`streams/_collector.py`)."""

from __future__ import annotations

import gc

import pytest
from prometheus_client import CollectorRegistry, Histogram

from fulmen.streams._collector import collector_paused, time_collections


def test_the_collector_is_paused_in_the_block_and_restored_after_it() -> None:
    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), collector_paused():
        raise RuntimeError("a failed batch")
    assert gc.isenabled()


def test_a_collector_off_before_the_block_stays_off() -> None:
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_collections_are_timed_by_generation() -> None:
    pauses = Histogram("pauses", "", ["generation"], registry=CollectorRegistry())
    before = list(gc.callbacks)
    time_collections(pauses)
    try:
        gc.collect(1)
    finally:
        gc.callbacks[:] = before
    assert pauses.labels("1")._sum.get() > 0  # type: ignore[attr-defined]  # no public getter
