"""`make bench-producer`: what one emit costs the agent, and how fast the SDK delivers
1 KB spans into a real broker, beside Kafka's own ProducerPerformance on the same broker.

Then the same throughput run once per `ProducerSettings.durability` (`memory`,
`spill_on_outage`, `write_ahead`: the cost of each while the broker is up).

Writes bench/results/producer.json. Sizes: BENCH_EVENTS (throughput run), BENCH_PACED_S
and BENCH_PACED_RATE (latency run at an agent-like rate), BENCH_MODE_EVENTS (each
durability's run). The 1-minute load average at start and end is recorded: on a shared
machine it says how much the figures are worth.
"""

from __future__ import annotations

import os
import random
import statistics
import string
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.progress import Progress

from bench._results import write_result
from fulmen.kafka import KafkaSettings, create_topics
from fulmen.local import KafkaBroker, run_producer_performance
from fulmen.producers import FulmenSettings, Producer, transport_for
from fulmen.producers._settings import Durability
from fulmen.schemas import SingleObjectCodec, Span
from tests.support.events import llm_span

ROOT = Path(__file__).resolve().parents[1]
RECORD_BYTES = 1024
POOL = 20_000
DURABILITIES: tuple[Durability, ...] = ("memory", "spill_on_outage", "write_ahead")
console = Console()


def _random_text(length: int, seed: int) -> str:
    return "".join(random.Random(seed).choices(string.ascii_uppercase, k=length))


def _spans(count: int) -> list[Span]:
    """Distinct spans of 1 KB encoded, their content random letters: as compressible as the
    payloads given to ProducerPerformance."""
    template = llm_span(payload=0)
    assert template.llm is not None
    bare_llm = template.llm.model_copy(update={"input_messages": ""})
    bare = template.model_copy(update={"llm": bare_llm})
    # -2: the string's length prefix grows from 1 to 2 varint bytes
    length = RECORD_BYTES - len(SingleObjectCodec().encode(bare, topic="t")) - 2
    spans = []
    for i in range(count):
        span = llm_span(f"rollout-{i % 64}", i, payload=0)
        assert span.llm is not None
        llm = span.llm.model_copy(update={"input_messages": _random_text(length, i)})
        spans.append(span.model_copy(update={"llm": llm}))
    return spans


def _percentile(samples: list[int], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000


def _producer(bootstrap: str, spill: Path, durability: Durability = "spill_on_outage") -> Producer:
    settings = FulmenSettings(
        transport="kafka",
        kafka={"bootstrap_servers": bootstrap},
        producer={"spill_dir": spill, "capture_openai": False, "durability": durability},
    )
    return Producer(settings, transport=transport_for(settings))


def paced_latency(producer: Producer, spans: list[Span], *, rate: int, seconds: float) -> list[int]:
    """Emit at `rate` events/s, timing each emit call on this (the agent's) thread."""
    samples: list[int] = []
    interval = 1.0 / rate
    start = time.perf_counter()
    total = int(rate * seconds)
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task(f"emit latency at {rate}/s", total=total)
        for i in range(total):
            target = start + i * interval
            while time.perf_counter() < target:
                pass
            span = spans[i % len(spans)]
            t0 = time.perf_counter_ns()
            producer.emit(span)
            samples.append(time.perf_counter_ns() - t0)
            if i % 5000 == 0:
                progress.update(task, completed=i)
    producer.flush(60)
    return samples


def throughput(producer: Producer, spans: list[Span], count: int) -> tuple[float, list[int]]:
    """Emit `count` events as fast as the SDK takes them (never overfilling its queue nor
    librdkafka's buffer), and time until every one is delivered and acknowledged (acks=all)."""
    samples: list[int] = []
    before = producer.stats()
    start = time.perf_counter()
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("sustained throughput", total=count)
        for i in range(count):
            if i % 1000 == 0:
                # Well below librdkafka's buffer bounds (200,000 messages, 64 MiB): what
                # overflows them is spilled, and this measures the path where the broker
                # keeps up.
                while (stats := producer.stats()).queued + stats.pending > 40_000:
                    time.sleep(0.001)
                progress.update(task, completed=i)
            t0 = time.perf_counter_ns()
            producer.emit(spans[i % len(spans)])
            samples.append(time.perf_counter_ns() - t0)
        assert producer.flush(300), producer.stats()
    elapsed = time.perf_counter() - start
    after = producer.stats()
    assert after.delivered - before.delivered == count, after
    assert after.lost == 0, after
    # write_ahead spills every event before producing it; the other modes none while up
    spills = count if producer.settings.producer.durability == "write_ahead" else 0
    assert after.spilled - before.spilled == spills, after
    return count / elapsed, samples


def main() -> None:
    events = int(os.environ.get("BENCH_EVENTS", "300000"))
    paced_rate = int(os.environ.get("BENCH_PACED_RATE", "5000"))
    paced_s = float(os.environ.get("BENCH_PACED_S", "10"))
    mode_events = int(os.environ.get("BENCH_MODE_EVENTS", "100000"))
    load_at_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp, KafkaBroker(data_dir=Path(tmp) / "kafka") as broker:
        bootstrap = broker.bootstrap_servers
        create_topics(KafkaSettings(bootstrap_servers=bootstrap), ["fulmen.spans", "ceiling"])
        console.print(f"broker at {bootstrap}; building {POOL} spans")
        spans = _spans(POOL)
        record_bytes = len(SingleObjectCodec().encode(spans[0], topic="t"))
        t0 = time.perf_counter()
        for i in range(2000):
            llm_span("rollout", i, payload=RECORD_BYTES)
        build_us = (time.perf_counter() - t0) / 2000 * 1e6

        producer = _producer(bootstrap, Path(tmp) / "spill")
        paced = paced_latency(producer, spans, rate=paced_rate, seconds=paced_s)
        events_per_s, saturated = throughput(producer, spans, events)
        producer.close()

        by_durability: dict[str, float] = {}
        for durability in DURABILITIES:
            console.print(f"durability {durability}")
            producer = _producer(bootstrap, Path(tmp) / f"spill-{durability}", durability)
            rate, emits = throughput(producer, spans, mode_events)
            producer.close()
            by_durability[f"events_per_s_{durability}"] = round(rate, 1)
            by_durability[f"emit_saturated_p99_us_{durability}"] = _percentile(emits, 0.99)

        console.print("ProducerPerformance on the same broker")
        payloads = Path(tmp) / "payloads.txt"
        payloads.write_text("\n".join(_random_text(record_bytes, seed) for seed in range(5000)))
        ceiling = run_producer_performance(
            bootstrap_servers=bootstrap,
            topic="ceiling",
            num_records=events,
            record_size=record_bytes,
            acks="all",
            producer_props={"compression.type": "lz4", "linger.ms": "20", "batch.size": "1048576"},
            payload_file=payloads,
        )

    metrics = {
        "emit_p50_us": _percentile(paced, 0.50),
        "emit_p99_us": _percentile(paced, 0.99),
        "emit_p999_us": _percentile(paced, 0.999),
        "emit_mean_us": statistics.fmean(paced) / 1000,
        "emit_paced_rate_per_s": paced_rate,
        "emit_saturated_p50_us": _percentile(saturated, 0.50),
        "emit_saturated_p99_us": _percentile(saturated, 0.99),
        "events_per_s": round(events_per_s, 1),
        "ceiling_events_per_s": ceiling.records_per_s,
        "ratio_to_ceiling": round(events_per_s / ceiling.records_per_s, 3),
        "ceiling_p99_ms": ceiling.p99_ms,
        "record_bytes": record_bytes,
        "events": events,
        "build_span_us": round(build_us, 2),
        "acks": "all",
        "compression": "lz4",
        **by_durability,
        "durability_events": mode_events,
        "load_average_1m_start": round(load_at_start, 2),
        "load_average_1m_end": round(os.getloadavg()[0], 2),
    }
    write_result("producer", metrics, console=console)


if __name__ == "__main__":
    main()
