"""`make bench-streams`: producer → Kafka → `fulmen worker` processes → store, on this machine.

Starts a Kafka broker, a store server (`fulmen store serve`, chDB) and one worker process,
then measures:
- `events_per_s`: a backlog of BENCH_EVENTS events (rollouts of 9: started, 3 LLM calls, 3
  tool calls, a reward, finished) produced as fast as possible, from the first produce until
  every raw row is queryable in the store and every rollout has its episode;
- `worker_cpu_us_per_event`: the worker processes' CPU time (user + system) over that drain,
  divided by the events drained;
- `latency_p50_s` / `latency_p99_s`: events produced at BENCH_LATENCY_RATE events/s for
  BENCH_LATENCY_S seconds; each span's latency runs from its `produce()` call until the
  store shows its (partition, offset) written (the store is polled every 50 ms);
- `events_per_s_2_workers` (and its CPU per event): the same backlog drained by two workers
  of another consumer group, on topics of their own, with the same broker and store server;
- Agent Lightning 0.3.0's store on the same machine in the same run (../shared/peers).
`load_average_at_start` is the machine's 1, 5 and 15 minute load when the run began: a
benchmark needs a quiet machine. Writes bench/results/streams.json.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from confluent_kafka import Producer
from rich.console import Console
from rich.progress import Progress

from bench._cpu import process_cpu_s
from bench._peers import agl_figures
from bench._results import write_result
from fulmen.local import KafkaBroker
from fulmen.schemas import SingleObjectCodec
from fulmen.store import LightningStore
from tests.support.events import rollout
from tests.support.stack import Stack, Worker, wait_for

EVENTS = int(os.environ.get("BENCH_EVENTS", "150000"))
LATENCY_RATE = int(os.environ.get("BENCH_LATENCY_RATE", "1000"))
LATENCY_S = float(os.environ.get("BENCH_LATENCY_S", "20"))
PARTITIONS = int(os.environ.get("BENCH_PARTITIONS", "4"))
console = Console()


def _encoded(prefix: str, count: int, stack: Stack) -> list[tuple[str, bytes, bytes]]:
    """(topic, key, value) of `count` events, whole rollouts, encoded once up front."""
    codec = SingleObjectCodec()
    out: list[tuple[str, bytes, bytes]] = []
    for i in range(count // 9 + 1):
        for event in rollout(f"{prefix}{i}"):
            topic = stack.topics.for_event(event.event_type)
            out.append((topic, event.meta.rollout_id.encode(), codec.encode(event, topic=topic)))
    return out[: whole_rollouts(count)]


def whole_rollouts(count: int) -> int:
    """How many of `count` events fill whole rollouts of 9: what `_encoded` gives."""
    return count - count % 9


def _producer(bootstrap: str) -> Producer:
    return Producer(
        {
            "bootstrap.servers": bootstrap,
            "partitioner": "murmur2_random",
            "linger.ms": 5,
            "compression.type": "lz4",
            "queue.buffering.max.messages": 1_000_000,
        }
    )


def produce_all(stack: Stack, messages: list[tuple[str, bytes, bytes]]) -> None:
    """Produce `messages` (topic, key, value) as fast as the producer takes them."""
    producer = _producer(stack.bootstrap)
    for topic, key, value in messages:
        while True:
            try:
                producer.produce(topic, value, key)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    producer.flush(60)


def _raw_rows(store: LightningStore) -> int:
    db = store.settings.database
    sql = " + ".join(f"(SELECT count() FROM {db}.{t})" for t in ("spans", "rewards", "rollouts"))
    try:
        return int(store.sql(f"SELECT {sql} AS n").to_pylist()[0]["n"])
    except Exception:
        return 0


def _throughput(stack: Stack, store: LightningStore, workers: list[Worker]) -> tuple[float, float]:
    """Events/s draining a backlog, and the workers' CPU µs per event meanwhile."""
    messages = _encoded("t", EVENTS, stack)
    cpu_before = _cpu_s(workers)
    started = time.perf_counter()
    drain(stack, store, messages, what=f"{len(workers)} worker(s) draining")
    elapsed = time.perf_counter() - started
    cpu_s = _cpu_s(workers) - cpu_before
    return len(messages) / elapsed, cpu_s / len(messages) * 1e6


def drain(
    stack: Stack, store: LightningStore, messages: list[tuple[str, bytes, bytes]], *, what: str
) -> None:
    """Produce `messages` (whole rollouts) and wait until every raw row is queryable in the
    store and every rollout has its episode."""
    before = _raw_rows(store)
    rollouts = _episodes(store) + len(messages) // 9  # before: episodes come while producing
    produce_all(stack, messages)
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task(what, total=len(messages))
        while (done := _raw_rows(store) - before) < len(messages):
            progress.update(task, completed=done)
            time.sleep(0.1)
        task = progress.add_task("episodes of the backlog", total=rollouts)
        while (done := _episodes(store)) < rollouts:
            progress.update(task, completed=done)
            time.sleep(0.1)


def _cpu_s(workers: list[Worker]) -> float:
    """CPU seconds (user + system) the worker processes used so far."""
    return sum(process_cpu_s(worker.pid) for worker in workers)


def _episodes(store: LightningStore) -> int:
    """Rollouts with an episode written (any revision)."""
    db = store.settings.database
    try:
        sql = f"SELECT uniqExact(rollout_id) AS n FROM {db}.episodes"
        return int(store.sql(sql).to_pylist()[0]["n"])
    except Exception:  # as in _raw_rows
        return 0


def _latencies(stack: Stack, store: LightningStore) -> np.ndarray:
    messages = _encoded("l", int(LATENCY_RATE * LATENCY_S), stack)
    producer = _producer(stack.bootstrap)
    sent: dict[tuple[int, int], float] = {}
    spans = stack.topics.for_event("span")

    def delivered(error: Any, message: Any, produced_at: float) -> None:
        if error is None and message.topic() == spans:
            sent[(message.partition(), message.offset())] = produced_at

    seen: dict[int, list[tuple[float, int]]] = defaultdict(list)
    db = store.settings.database
    poll_sql = f"SELECT source_partition AS p, max(source_offset) AS o FROM {db}.spans GROUP BY p"
    started, step, next_poll = time.perf_counter(), 1.0 / LATENCY_RATE, 0.0
    for i, (topic, key, value) in enumerate(messages):
        while (now := time.perf_counter()) < started + i * step:
            if now >= next_poll:
                _poll(store, poll_sql, seen)
                next_poll = time.perf_counter() + 0.05
            producer.poll(0)
        producer.produce(topic, value, key, on_delivery=_bind(delivered, time.perf_counter()))
        producer.poll(0)
    producer.flush(60)
    # One pass: a max over `sent` per entry of `sent` took seconds at 13k spans, and the spans
    # produced last waited for it (their latency ended at the first poll after it).
    wanted: dict[int, int] = {}
    for partition, offset in sent:
        wanted[partition] = max(offset, wanted.get(partition, -1))
    deadline = time.perf_counter() + 120
    while time.perf_counter() < deadline:
        _poll(store, poll_sql, seen)
        if all(seen[p] and seen[p][-1][1] >= o for p, o in wanted.items()):
            break
        time.sleep(0.05)
    latencies = []
    for (partition, offset), produced_at in sent.items():
        visible = next(t for t, high in seen[partition] if high >= offset)
        latencies.append((produced_at - started, visible - produced_at))
    return np.array(sorted(latencies))


def _p99_by_window(latencies: np.ndarray, window_s: float = 5.0) -> list[float]:
    """The p99 latency of the spans produced in each `window_s` of the latency run: a tail
    from the run's start differs from one that recurs."""
    windows = (latencies[:, 0] // window_s).astype(int)
    return [
        round(float(np.percentile(latencies[windows == w, 1], 99)), 3)
        for w in range(int(windows.max()) + 1)
        if (windows == w).any()
    ]


def _bind(callback: Any, produced_at: float) -> Any:
    return lambda error, message: callback(error, message, produced_at)


def _poll(store: LightningStore, sql: str, seen: dict[int, list[tuple[float, int]]]) -> None:
    try:
        rows = store.sql(sql).to_pylist()
    except Exception:
        return
    now = time.perf_counter()
    for row in rows:
        history = seen[row["p"]]
        if not history or row["o"] > history[-1][1]:
            history.append((now, row["o"]))


def _started(stack: Stack, app_id: str, count: int) -> list[Worker]:
    workers = [
        stack.worker(app_id, app_id, partitions=str(PARTITIONS), grace_s="1") for _ in range(count)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        wait_for(worker.answers, timeout_s=120, what="a worker's web server")
    stack.wait_for_group(app_id, count)
    return workers


def _stop(workers: list[Worker]) -> None:
    for worker in workers:
        worker.stop()


@contextlib.contextmanager
def running_stack(prefix: str) -> Iterator[Stack]:
    """A broker and a store server, on a temporary directory, for topics of `prefix`."""
    with tempfile.TemporaryDirectory(prefix="fulmen-bench-streams-") as tmp:
        root = Path(tmp)
        broker = KafkaBroker(data_dir=root / "kafka")
        broker.start()
        try:
            stack = Stack(root, broker.bootstrap_servers, prefix, partitions=PARTITIONS)
            stack.start_store()
            try:
                yield stack
            finally:
                stack.store.stop()
        finally:
            broker.stop()


def main() -> None:
    load_at_start = [round(load, 2) for load in os.getloadavg()]
    with running_stack("bench.") as stack:
        workers = _started(stack, "bench", 1)
        try:
            store = stack.client("bench")
            events_per_s, cpu_us = _throughput(stack, store, workers)
            console.print(f"1 worker: {events_per_s:,.0f} events/s, {cpu_us:.0f} µs CPU each")
            drained = workers[0].metrics()
            latencies = _latencies(stack, store)
            metrics = workers[0].metrics()
        finally:
            _stop(workers)
        pair = stack.with_topics("bench2.", partitions=PARTITIONS)
        workers = _started(pair, "bench2", 2)
        try:
            events_per_s_2, cpu_us_2 = _throughput(pair, pair.client("bench2"), workers)
            console.print(f"2 workers: {events_per_s_2:,.0f} events/s")
        finally:
            _stop(workers)
    console.print("measuring Agent Lightning 0.3.0's store (../shared/peers) …")
    peers = agl_figures()
    write_result(
        "streams",
        {
            "events_per_s": round(events_per_s),
            "worker_cpu_us_per_event": round(cpu_us, 1),
            "latency_p50_s": round(float(np.percentile(latencies[:, 1], 50)), 3),
            "latency_p99_s": round(float(np.percentile(latencies[:, 1], 99)), 3),
            "latency_p99_s_by_5s": _p99_by_window(latencies),
            "latency_rate_events_per_s": LATENCY_RATE,
            "latency_samples": len(latencies),
            "events_per_s_2_workers": round(events_per_s_2),
            "worker_cpu_us_per_event_2_workers": round(cpu_us_2, 1),
            **{k: round(v) for k, v in peers.items()},
            "events": EVENTS,
            "partitions": PARTITIONS,
            "load_average_at_start": load_at_start,
            "worker_batch_max": 5000,
            "sink_mean_s_per_batch": _histogram_mean(metrics, "raw"),
            "latency_run_sink_mean_s": {
                kind: _histogram_mean(metrics, kind, since=drained)
                for kind in ("raw", "check", "episodes")
            },
            "latency_run_sink_writes": {
                kind: _histogram_count(metrics, kind, since=drained)
                for kind in ("raw", "check", "episodes")
            },
            "events_per_batch": round(
                metrics["fulmen_worker_events_in_total"]
                / max(metrics.get('fulmen_worker_sink_latency_seconds_count{kind="raw"}', 1), 1)
            ),
            "path": "confluent-kafka producer → Kafka 4.1.1 → fulmen worker (Faust, aiokafka) "
            "→ fulmen store serve (chDB over ClickHouse HTTP)",
        },
        console=console,
    )


def _histogram_mean(
    metrics: dict[str, float], kind: str, *, since: dict[str, float] | None = None
) -> float:
    """The mean store call of `kind` (since the `since` sample of the metrics)."""
    total = _sample(metrics, f'fulmen_worker_sink_latency_seconds_sum{{kind="{kind}"}}', since)
    count = _histogram_count(metrics, kind, since=since)
    return round(total / count, 4) if count else 0.0


def _histogram_count(
    metrics: dict[str, float], kind: str, *, since: dict[str, float] | None = None
) -> int:
    name = f'fulmen_worker_sink_latency_seconds_count{{kind="{kind}"}}'
    return int(_sample(metrics, name, since))


def _sample(metrics: dict[str, float], name: str, since: dict[str, float] | None) -> float:
    return metrics.get(name, 0.0) - (since or {}).get(name, 0.0)


if __name__ == "__main__":
    main()
