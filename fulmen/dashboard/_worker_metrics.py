"""Stream workers' health, read from their Prometheus endpoints (`fulmen worker` serves
`/metrics`; docs/streams.md lists the metrics)."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx
from prometheus_client.parser import text_string_to_metric_families


@dataclass(frozen=True)
class PartitionLag:
    """Messages a worker is behind the end of one input partition."""

    topic: str
    partition: str
    lag: float


@dataclass(frozen=True)
class WorkerStatus:
    """What one worker's metrics say, or why they could not be read (`error`)."""

    url: str
    error: str | None = None
    lag: list[PartitionLag] = field(default_factory=list)
    dead_letters: dict[str, float] = field(default_factory=dict)
    events_in: float | None = None
    buffered_rollouts: float | None = None
    store_available: bool | None = None

    @property
    def total_lag(self) -> float:
        return sum(partition.lag for partition in self.lag)


def read_worker(url: str, *, timeout_s: float = 2.0) -> WorkerStatus:
    """GET `url` (a worker's `/metrics`) and parse it; an unreachable worker or a bad
    answer is a `WorkerStatus` with `error` set, never an exception."""
    try:
        response = httpx.get(url, timeout=timeout_s)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        return WorkerStatus(url=url, error=f"{type(exc).__name__}: {exc}")
    try:
        return parse_worker_metrics(url, response.text)
    except ValueError as exc:
        return WorkerStatus(url=url, error=f"not Prometheus text: {exc}")


def parse_worker_metrics(url: str, text: str) -> WorkerStatus:
    """A `WorkerStatus` from Prometheus text. Raises ValueError if `text` is not in the
    exposition format; metrics other than the worker's are ignored."""
    lag: list[PartitionLag] = []
    dead: dict[str, float] = {}
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "fulmen_worker_lag":
                lag.append(
                    PartitionLag(sample.labels["topic"], sample.labels["partition"], sample.value)
                )
            elif sample.name == "fulmen_worker_dead_letters_total":
                dead[sample.labels["problem"]] = sample.value
            else:
                values[sample.name] = sample.value
    available = values.get("fulmen_worker_store_available")
    return WorkerStatus(
        url=url,
        lag=sorted(lag, key=lambda p: (p.topic, p.partition.zfill(6))),
        dead_letters=dead,
        events_in=values.get("fulmen_worker_events_in_total"),
        buffered_rollouts=values.get("fulmen_worker_buffered_rollouts"),
        store_available=None if available is None else available >= 1,
    )
