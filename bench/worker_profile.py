"""`python -m bench.worker_profile`: where one stream worker's CPU goes while it drains a
backlog, by py-spy (`uvx py-spy`, or `PY_SPY=/path/to/py-spy`).

The stack of `make bench-streams` (a broker, a store server, one worker, 4 partitions), a
backlog of BENCH_EVENTS events (default 60,000) produced at once, and py-spy sampling the
worker (all its threads, idle ones left out) from the first produce until every raw row and
every episode is in the store. Prints each part's share of the samples (a sample counts for
every part it passes through: parts nest) and the top functions by own time; the collapsed
stacks stay in `--out` for a flame graph.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

from bench._cpu import process_cpu_s
from bench.streams_bench import _encoded, _episodes, _raw_rows, _started, produce_all, running_stack

PARTS: dict[str, tuple[str, ...]] = {
    "decode (all)": ("decode_batch",),
    "  fastavro": ("fastavro",),
    "  pydantic validation": ("model_validate",),
    "  models built unvalidated": ("_trusted.py",),
    "rollout buffers (table get/set, add)": ("_buffer (", "_is_new", "_refuse_over_budget"),
    "  RolloutState.add": ("_state.py:", "_assembly.py:14"),
    "changelog (Faust table and producer)": ("send_changelog", "dump_state", "on_key_set"),
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=int(os.environ.get("BENCH_EVENTS", 60000)))
    parser.add_argument("--out", type=Path, default=Path("worker-profile.txt"))
    args = parser.parse_args()
    py_spy = shlex.split(os.environ.get("PY_SPY", "uvx py-spy"))
    with running_stack("prof.") as stack:
        (worker,) = _started(stack, "prof", 1)
        store = stack.client("prof")
        messages = _encoded("p", args.events, stack)
        command = [*py_spy, "record", "--pid", str(worker.pid), "--format", "raw"]
        spy = subprocess.Popen([*command, "--rate", "200", "--nonblocking", "-o", str(args.out)])
        time.sleep(2)  # py-spy attached
        started, cpu_before = time.perf_counter(), process_cpu_s(worker.pid)
        produce_all(stack, messages)
        rollouts = len(messages) // 9
        while _raw_rows(store) < len(messages) or _episodes(store) < rollouts:
            time.sleep(0.1)
        elapsed = time.perf_counter() - started
        cpu_us = (process_cpu_s(worker.pid) - cpu_before) / len(messages) * 1e6
        collections = {
            name.split("=")[1].strip('"}'): value
            for name, value in worker.metrics().items()
            if name.startswith("fulmen_worker_gc_pause_seconds_sum")
        }
        spy.send_signal(signal.SIGINT)
        spy.wait(60)
        worker.stop()
    stacks = _read(args.out)
    print(f"{len(messages):,} events in {elapsed:.1f} s, {sum(stacks.values()):,} samples")
    print(f"worker CPU {cpu_us:.0f} µs an event; collector pauses (s) by generation: {collections}")
    for part, share in _parts(stacks).items():
        print(f"  {part:<40} {share:6.1%}")
    print("own time, top 25:")
    total = sum(stacks.values())
    for frame, n in _leaves(stacks).most_common(25):
        print(f"  {n / total:6.1%}  {frame[:140]}")


if __name__ == "__main__":
    main()
