"""`python -m bench.worker_profile`: where one stream worker's CPU goes while it drains a
backlog, by py-spy (`uvx py-spy`, or `PY_SPY=/path/to/py-spy`).

The stack of `make bench-streams` (a broker, a store server, one worker, 4 partitions), a
backlog of BENCH_EVENTS events (default 60,000) produced at once, and py-spy sampling the
worker (all its threads, idle ones left out) from the first produce until every raw row and
every episode is in the store. With `--phase latency` the backlog is drained first, unsampled,
and py-spy samples the latency run that follows (events at BENCH_LATENCY_RATE a second, as
`make bench-streams` measures latency), whose p50, p99 and p99 per 5 s it prints. Prints
each part's share of the samples (a sample counts for every part it passes through: parts
nest) and the top functions by own time; the collapsed stacks stay in `--out` for a flame
graph. With `--loop-counts`, the worker also counts the callbacks its event loops run and
their polls (`bench/_loop_probe`), printed per event: a task woken many times an event is
framework overhead that no stage's profile shows.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import numpy as np

from bench._cpu import process_cpu_s
from bench._results import ROOT
from bench.streams_bench import (
    LATENCY_RATE,
    LATENCY_S,
    _encoded,
    _latencies,
    _p99_by_window,
    _started,
    drain,
    running_stack,
    whole_rollouts,
)

PARTS: dict[str, tuple[str, ...]] = {
    "decode (all)": ("decode_batch",),
    "  fastavro": ("fastavro",),
    "  pydantic validation": ("model_validate",),
    "  models built unvalidated": ("_trusted.py",),
    "rollout buffers (table get/set, add)": ("_buffer (", "_is_new", "_refuse_over_budget"),
    "  RolloutState.add": ("_state.py:", "_assembly.py:14"),
    "changelog (records, outbox, producer)": ("dump_record", "on_key_set", "publish"),
    "raw rows (Arrow, conform, insert)": ("write_raw",),
    "  events_table": ("events_table",),
    "episodes (check, assemble, write)": ("assemble_due", "write_episodes"),
    "announce": ("_announce",),
    "clickhouse-connect (all)": ("clickhouse_connect",),
    "aiokafka fetch and records": ("aiokafka/consumer", "aiokafka/record"),
    "aiokafka producer": ("aiokafka/producer",),
    "event loop (own)": ("_run_once",),
}


def _parts(stacks: Counter[str]) -> dict[str, float]:
    total = sum(stacks.values())
    return {
        part: sum(n for stack, n in stacks.items() if any(m in stack for m in markers)) / total
        for part, markers in PARTS.items()
    }


def _leaves(stacks: Counter[str]) -> Counter[str]:
    leaves: Counter[str] = Counter()
    for stack, n in stacks.items():
        leaves[stack.rsplit(";", 1)[-1]] += n
    return leaves


def _read(path: Path) -> Counter[str]:
    stacks: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack:
            stacks[stack] += int(count)
    return stacks


_HISTOGRAMS = ("fulmen_worker_sink_latency_seconds", "fulmen_worker_gc_pause_seconds")


def _loop_counts(prefix: Path | None, pid: int) -> Counter[str]:
    """What `bench/_loop_probe` counted in process `pid` so far (nothing without a prefix)."""
    if prefix is None:
        return Counter()
    dumped = Path(f"{prefix}.{pid}.json")
    return Counter(json.loads(dumped.read_text())) if dumped.exists() else Counter()


def _bucket_deltas(now: dict[str, float], before: dict[str, float]) -> dict[str, str]:
    """Per histogram and label, how many observations of the run fell in each bucket: the
    store calls' and the collector's pauses, whose tails a mean hides."""
    found: dict[str, list[str]] = {}
    for name, value in now.items():
        if "_bucket{" not in name or not name.startswith(_HISTOGRAMS):
            continue
        metric, labels = name.split("{", 1)
        upper = labels.split('le="')[1].split('"')[0]
        label = labels.split(",")[0]
        delta = value - before.get(name, 0.0)
        found.setdefault(f"{metric}{{{label}}}", []).append(f"≤{upper}: {delta:.0f}")
    return {name: ", ".join(buckets) for name, buckets in found.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=int(os.environ.get("BENCH_EVENTS", 60000)))
    parser.add_argument("--out", type=Path, default=Path("worker-profile.txt"))
    parser.add_argument("--phase", choices=("drain", "latency"), default="drain")
    parser.add_argument("--loop-counts", action="store_true")
    args = parser.parse_args()
    py_spy = shlex.split(os.environ.get("PY_SPY", "uvx py-spy"))
    loop_counts = args.out.with_suffix(".loop") if args.loop_counts else None
    if loop_counts is not None:
        os.environ["FULMEN_LOOP_COUNTS"] = str(loop_counts)
        os.environ["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(ROOT / "bench" / "_loop_probe"), os.environ.get("PYTHONPATH")])
        )
    with running_stack("prof.") as stack:
        (worker,) = _started(stack, "prof", 1)
        store = stack.client("prof")
        messages = _encoded("p", args.events, stack)
        command = [*py_spy, "record", "--pid", str(worker.pid), "--format", "raw"]
        if args.phase == "latency":
            drain(stack, store, messages, what="draining the backlog (not sampled)")
            print(f"drained {len(messages):,} events; sampling the latency run")
        spy = subprocess.Popen([*command, "--rate", "200", "--nonblocking", "-o", str(args.out)])
        time.sleep(2)  # py-spy attached
        started, cpu_before = time.perf_counter(), process_cpu_s(worker.pid)
        metrics_before = worker.metrics()
        loop_before = _loop_counts(loop_counts, worker.pid)
        if args.phase == "latency":
            latencies = _latencies(stack, store)
            count = whole_rollouts(int(LATENCY_RATE * LATENCY_S))  # all it produced
            p50, p99 = (float(np.percentile(latencies[:, 1], q)) for q in (50, 99))
            by_5s = _p99_by_window(latencies)
            print(f"latency p50 {p50:.2f} s, p99 {p99:.2f} s; p99 by 5 s {by_5s}")
        else:
            drain(stack, store, messages, what="draining the backlog")
            count = len(messages)
        elapsed = time.perf_counter() - started
        cpu_us = (process_cpu_s(worker.pid) - cpu_before) / count * 1e6
        collections = {
            name.split("=")[1].strip('"}'): value
            for name, value in worker.metrics().items()
            if name.startswith("fulmen_worker_gc_pause_seconds_sum")
        }
        pauses = _bucket_deltas(worker.metrics(), metrics_before)
        time.sleep(1.5)  # the probe's next dump
        loop = _loop_counts(loop_counts, worker.pid) - loop_before
        spy.send_signal(signal.SIGINT)
        spy.wait(60)
        worker.stop()
    stacks = _read(args.out)
    print(f"{count:,} events in {elapsed:.1f} s, {sum(stacks.values()):,} samples")
    print(f"worker CPU {cpu_us:.0f} µs an event; collector pauses (s) by generation: {collections}")
    for name, counts in pauses.items():
        print(f"  {name}: {counts}")
    if loop_counts is not None:
        callbacks = sum(n for name, n in loop.items() if ": poll, " not in name)
        print(f"event-loop callbacks: {callbacks / count:.2f} an event; the most frequent:")
        for name, n in loop.most_common(12):
            print(f"  {n / count:7.3f}  {name[:150]}")
    for part, share in _parts(stacks).items():
        print(f"  {part:<40} {share:6.1%}")
    print("own time, top 25:")
    total = sum(stacks.values())
    for frame, n in _leaves(stacks).most_common(25):
        print(f"  {n / total:6.1%}  {frame[:140]}")


if __name__ == "__main__":
    main()
