"""The cyclic garbage collector, set for the stream worker: a process that handles events in
batches of thousands and keeps their buffers for seconds to hours.

CPython collects its youngest generation every 700 allocations of tracked objects (dicts,
lists, models), visiting each one still alive. In the middle of a batch nearly all are
alive (the batch's decoded events, their fields, their rows), so with the default thresholds
the collector visited each of them again and again, and promoted them to the older
generations, whose collections visit everything the process holds, buffered events
included. Measured on the bench machine (`bench/worker_profile.py`), the collector took about
half of a draining worker's CPU. So the worker pauses it while a batch or a tick runs
(`collector_paused`): what the batch does not keep is freed by reference counting when it
ends, and the collection that follows visits only what it kept. Objects that live as long as
the process (modules, the app) are frozen out of every collection, and older generations are
collected less often (`THRESHOLDS`). Cyclic garbage is still collected, between batches.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prometheus_client import Histogram

THRESHOLDS = (10_000, 10, 100)
"""Tracked allocations before a young collection; young collections before a middle one;
middle ones before a full one is considered (CPython also waits until a quarter of the old
generation is new)."""


def tune_collector() -> None:
    """Freeze what the process holds now out of later collections and set `THRESHOLDS`:
    call once, when the application is built and before it handles events."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)


@contextmanager
def collector_paused() -> Iterator[None]:
    """No automatic collection while the block runs (blocks must not overlap: the worker
    runs them under its lock)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def time_collections(pauses: Histogram) -> None:
    """Observe each collection's pause in `pauses`, labelled by its generation."""
    started = 0.0

    def observe(phase: str, info: dict[str, Any]) -> None:
        nonlocal started
        if phase == "start":
            started = time.perf_counter()
        else:
            pauses.labels(str(info["generation"])).observe(time.perf_counter() - started)

    gc.callbacks.append(observe)
