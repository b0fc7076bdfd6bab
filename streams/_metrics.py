"""The stream worker's metrics, as Prometheus text (served at `/metrics` by Faust's web
server, beside Faust's own `/stats/`)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from fulmen.streams._intake import DEAD_LETTER_PROBLEMS, Intake


class WorkerMetrics:
    """Counters of one worker process, in their own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.events_in = Counter(
            "fulmen_worker_events_in", "Messages read from the input topics", registry=r
        )
        self.duplicates = Counter(
            "fulmen_worker_duplicates", "Events ignored as already seen", registry=r
        )
        self.replayed = Counter(
            "fulmen_worker_replayed",
            "Messages read again after a rebalance that this process had already taken",
            registry=r,
        )
        self.dead_letters = Counter(
            "fulmen_worker_dead_letters", "Messages sent to the DLQ", ["problem"], registry=r
        )
        for problem in DEAD_LETTER_PROBLEMS:
            self.dead_letters.labels(problem)
        self.raw_rows = Counter(
            "fulmen_worker_raw_rows", "Raw event rows written to the store", registry=r
        )
        self.episodes_out = Counter(
            "fulmen_worker_episodes_out", "Episode revisions written to the store", registry=r
        )
        self.triplets_out = Counter(
            "fulmen_worker_triplets_out", "Triplets written to the store", registry=r
        )
        self.store_retries = Counter(
            "fulmen_worker_store_retries", "Store writes retried after a failure", registry=r
        )
        self.sink_latency = Histogram(
            "fulmen_worker_sink_latency_seconds",
            "Time to write one batch to the store, retries included",
            ["kind"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=r,
        )
        self.gc_pauses = Histogram(
            "fulmen_worker_gc_pause_seconds",
            "Pauses of the cyclic garbage collector, by generation (2: a full collection)",
            ["generation"],
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=r,
        )
        self.lag = Gauge(
            "fulmen_worker_lag",
            "Messages behind the end of a partition",
            ["topic", "partition"],
            registry=r,
        )
        self.buffered_rollouts = Gauge(
            "fulmen_worker_buffered_rollouts", "Rollouts held in the buffer table", registry=r
        )
        self.store_available = Gauge(
            "fulmen_worker_store_available", "1 while the store accepts writes", registry=r
        )
        self.store_available.set(1)

    def count_intake(self, read: int, intake: Intake) -> None:
        self.events_in.inc(read)
        self.duplicates.inc(intake.duplicates)
        for dead in intake.dead:
            self.dead_letters.labels(dead.problem).inc()

    def prometheus(self) -> bytes:
        """The metrics in the Prometheus text exposition format."""
        return generate_latest(self.registry)
