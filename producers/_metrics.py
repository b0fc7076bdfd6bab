"""The producer's delivery figures as Prometheus metrics."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from fulmen.producers._producer import Producer

_OUTCOMES = (
    "emitted",
    "delivered",
    "spilled",
    "resent",
    "retried",
    "oversize",
    "failed",
    "dropped",
)


class ProducerCollector(Collector):
    """Reads `producer.stats()` at each scrape. Register it with the registry your process
    already serves, e.g. `prometheus_client.REGISTRY.register(ProducerCollector(producer))`;
    `fulmen gateway` serves it at `/metrics`.

    `fulmen_producer_events_total{outcome}` counts events by outcome (`oversize`, `failed` and
    `dropped` are lost: alert on their rate); `fulmen_producer_pending`, `_queued` and
    `_spill_bytes` are what waits now. `fulmen_producer_version_mismatches_total` counts LLM
    calls answered by another model version than the one in force (`Producer.served`).
    `fulmen_producer_redactions_total{kind}` counts what the redactor masked
    (`EmitterStats.redacted`).
    """

    def __init__(self, producer: Producer) -> None:
        self.producer = producer

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        stats = self.producer.stats()
        events = CounterMetricFamily(
            "fulmen_producer_events", "Events by outcome since start", labels=["outcome"]
        )
        for outcome in _OUTCOMES:
            events.add_metric([outcome], getattr(stats, outcome))
        yield events
        yield GaugeMetricFamily(
            "fulmen_producer_pending", "Events handed to Kafka, not yet acknowledged", stats.pending
        )
        yield GaugeMetricFamily(
            "fulmen_producer_queued", "Events emitted, not yet taken by the sender", stats.queued
        )
        yield GaugeMetricFamily(
            "fulmen_producer_spill_bytes", "Bytes waiting in the disk spill", stats.spill_bytes
        )
        redactions = CounterMetricFamily(
            "fulmen_producer_redactions", "Texts redacted, by kind, since start", labels=["kind"]
        )
        for kind, count in sorted(stats.redacted.items()):
            redactions.add_metric([kind], count)
        yield redactions
        yield CounterMetricFamily(
            "fulmen_producer_version_mismatches",
            "LLM calls another model version answered than the one in force",
            self.producer.version_mismatches,
        )
