"""How many threads torch should use on the CPU: measured, not assumed.

torch runs each operator on all the cores it may use, and its threads wait for each other at
the end of every one. On a machine where other work holds a core, the thread that lost its
core holds up the others at every operator: measured here on 2 cores with one busy, a
SmolLM2-135M training step took 46 s with 2 threads and 10 s with 1, and generating 18
tokens 4.4 s against 1.6 s. On the same machine quiet, 2 threads trained 1.5 times faster
than 1. So the count is measured: the one that runs a small model's matrix products fastest.
"""

from __future__ import annotations

import os
import time

OMP_NUM_THREADS = "OMP_NUM_THREADS"
_REPEATS = 5
_PRODUCTS = 20


def fastest_cpu_threads() -> int:
    """The thread count, from 1 to the cores this process may run on, whose matrix products
    of a small model's shape (576 wide, SmolLM2-135M's) run fastest now: each count's best of
    `_REPEATS` timings of `_PRODUCTS` products, about a tenth of a second in all. Leaves
    torch set to that count. `OMP_NUM_THREADS`, when set, is taken as given instead."""
    import torch

    given = os.environ.get(OMP_NUM_THREADS)
    if given:
        return int(given)
    cores = len(os.sched_getaffinity(0))
    timings = {count: _timed(count) for count in range(1, cores + 1)}
    fastest = min(timings, key=timings.__getitem__)
    torch.set_num_threads(fastest)
    return fastest


def _timed(threads: int) -> float:
    import torch

    torch.set_num_threads(threads)
    left, right = torch.randn(256, 576), torch.randn(576, 576)
    best = float("inf")
    for _ in range(_REPEATS):
        started = time.perf_counter()
        for _ in range(_PRODUCTS):
            left @ right
        best = min(best, time.perf_counter() - started)
    return best
