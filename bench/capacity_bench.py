"""`make bench-capacity`: the CPU each stage of the data plane spends per event, measured
in one run, and what it means for 1k, 10k and 100k agents (docs/operations.md).

One agent process emits BENCH_CAPACITY_EVENTS events (whole rollouts of 9: started, 3 LLM
calls, 3 tool calls, a reward, finished) through the producer SDK to a Kafka broker; one
`fulmen worker` turns them into raw rows, episodes and triplets in `fulmen store serve`
(chDB). Each process's CPU time (/proc) from the first emit until every episode is in the
store, less what it spends idle over as long, divided by the events, is its stage's cost.
Also per event: bytes in Kafka's log and on the store's disk. Writes
bench/results/capacity.json.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console

from bench._cpu import load_average_1m, process_cpu_s
from bench._results import ROOT, write_result
from bench.streams_bench import _episodes, _raw_rows
from fulmen.local import KafkaBroker
from tests.support.stack import Stack, wait_for

EVENTS = int(os.environ.get("BENCH_CAPACITY_EVENTS", "90000"))
IDLE_S = 5.0
EVENTS_PER_AGENT_S = 0.9  # one rollout of 9 events every 10 s
AGENTS = (1_000, 10_000, 100_000)
console = Console()


def _cpu(pids: dict[str, int]) -> dict[str, float]:
    return {stage: process_cpu_s(pid) for stage, pid in pids.items()}


def _bytes_under(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _run_agent(bootstrap: str, prefix: str, spill: Path) -> dict[str, float]:
    result = subprocess.run(
        [sys.executable, "-m", "bench._capacity_agent", bootstrap, prefix, str(EVENTS), str(spill)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    report: dict[str, float] = json.loads(result.stdout.splitlines()[-1])
    return report


def _store_bytes(stack: Stack, database: str) -> int:
    store = stack.client(database)
    sql = (
        f"SELECT sum(bytes_on_disk) AS b FROM system.parts WHERE database = '{database}' AND active"
    )
    return int(store.sql(sql).to_pylist()[0]["b"] or 0)


def _model(us: dict[str, float], bytes_per_event: dict[str, float]) -> list[dict[str, object]]:
    """Cores per stage, partitions and disk per day for each fleet size."""
    rows: list[dict[str, object]] = []
    for agents in AGENTS:
        rate = agents * EVENTS_PER_AGENT_S
        cores = {stage: round(rate * cost / 1e6, 2) for stage, cost in us.items()}
        rows.append(
            {
                "agents": agents,
                "events_per_s": rate,
                "cores": cores,
                # a worker is one process (one core at most): a partition per worker core,
                # doubled so the group can grow without repartitioning
                "workers": math.ceil(cores["worker"]),
                "partitions": 2 * math.ceil(cores["worker"]),
                "kafka_gb_per_day": round(rate * bytes_per_event["kafka"] * 86_400 / 1e9, 1),
                "store_gb_per_day": round(rate * bytes_per_event["store"] * 86_400 / 1e9, 1),
                "bottleneck": max(cores, key=lambda stage: cores[stage]),
            }
        )
    return rows


def main() -> None:
    load_start = load_average_1m()
    with tempfile.TemporaryDirectory(prefix="fulmen-bench-capacity-") as tmp:
        root = Path(tmp)
        broker = KafkaBroker(data_dir=root / "kafka")
        broker.start()
        try:
            stack = Stack(root, broker.bootstrap_servers, "cap.", partitions=4)
            stack.start_store()
            worker = stack.worker("cap", "cap", partitions="4", grace_s="1")
            worker.start()
            try:
                wait_for(worker.answers, timeout_s=120, what="the worker")
                store = stack.client("cap")
                assert broker.pid is not None
                pids = {"kafka": broker.pid, "worker": worker.pid, "store": stack.store.pid}
                idle_from = _cpu(pids)
                time.sleep(IDLE_S)
                idle = {k: (v - idle_from[k]) / IDLE_S for k, v in _cpu(pids).items()}
                kafka_bytes = _bytes_under(root / "kafka" / "data")
                before, started = _cpu(pids), time.perf_counter()
                console.print(f"an agent emits {EVENTS:,} events through the SDK …")
                agent = _run_agent(broker.bootstrap_servers, "cap.", root / "spill")
                rollouts = int(agent["events"]) // 9
                with console.status("waiting for the worker to store them"):
                    wait_for(
                        lambda: (
                            _raw_rows(store) >= agent["events"] and _episodes(store) >= rollouts
                        ),
                        timeout_s=900,
                        what="every event in the store",
                    )
                wall_s = time.perf_counter() - started
                after = _cpu(pids)
                kafka_bytes = _bytes_under(root / "kafka" / "data") - kafka_bytes
                store_bytes = _store_bytes(stack, "cap")
            finally:
                worker.stop()
                stack.store.stop()
        finally:
            broker.stop()
    events = agent["events"]
    us = {
        stage: round((after[stage] - before[stage] - idle[stage] * wall_s) / events * 1e6, 1)
        for stage in pids
    }
    us = {"sdk": round(agent["sdk_us_per_event"], 1), **us}
    per_event = {"kafka": kafka_bytes / events, "store": store_bytes / events}
    model = _model(us, per_event)
    for row in model:
        console.print(row)
    write_result(
        "capacity",
        {
            "cpu_us_per_event": us,
            "idle_cores": {k: round(v, 3) for k, v in idle.items()},
            "agent_build_us_per_event": round(agent["build_us_per_event"], 1),
            "sdk_events_per_s": round(agent["sdk_events_per_s"]),
            "bytes_per_event": {k: round(v, 1) for k, v in per_event.items()},
            "events": events,
            "end_to_end_s": round(wall_s, 1),
            "events_per_agent_s": EVENTS_PER_AGENT_S,
            "model": model,
            "load_average_1m_start": load_start,
            "path": "producer SDK (Kafka transport) → Kafka → 1 fulmen worker → fulmen store "
            "serve (chDB)",
        },
        console=console,
    )


if __name__ == "__main__":
    main()
