"""The producer SDK against a real Kafka broker: round trips, order, outages, crashes and
corrupt bytes."""

from __future__ import annotations

import json
import random
import string
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer as RawProducer

import fulmen
from fulmen.kafka import Consumed, EventConsumer, KafkaSettings, create_topics
from fulmen.local import KafkaBroker
from fulmen.producers import FulmenSettings, Producer
from fulmen.producers._settings import Durability
from fulmen.schemas import DecodeError, Event, Span
from tests.support.events import all_events, llm_span

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def _settings(bootstrap: str, spill: Path, prefix: str, **kafka_options: str) -> FulmenSettings:
    return FulmenSettings(
        transport="kafka",
        kafka={"bootstrap_servers": bootstrap, "options": kafka_options},
        topics={"prefix": prefix},
        producer={"spill_dir": spill, "capture_openai": False, "linger_ms": 5},
    )


@pytest.fixture
def prefix(bootstrap_servers: str) -> str:
    """Fresh topics per test, created up front with 4 partitions."""
    name = f"t{uuid.uuid4().hex[:8]}."
    settings = FulmenSettings(topics={"prefix": name})
    create_topics(
        KafkaSettings(bootstrap_servers=bootstrap_servers), settings.topics.event_topics()
    )
    return name


def _consume(
    bootstrap: str, topics: list[str], expected: int, *, timeout_s: float = 60
) -> list[Consumed]:
    consumer = EventConsumer(
        KafkaSettings(bootstrap_servers=bootstrap), topics, group_id=uuid.uuid4().hex
    )
    received: list[Consumed] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(received) < expected and time.monotonic() < deadline:
            received.extend(consumer.poll(max_messages=10_000, timeout_s=0.5))
        received.extend(consumer.poll(max_messages=10_000, timeout_s=1.0))  # nothing extra?
    finally:
        consumer.close()
    return received


def _events(received: list[Consumed]) -> list[Event]:
    events = [c.event for c in received]
    assert not [e for e in events if isinstance(e, DecodeError)]
    return [e for e in events if not isinstance(e, DecodeError)]


def test_every_event_type_round_trips(bootstrap_servers: str, prefix: str, tmp_path: Path) -> None:
    settings = _settings(bootstrap_servers, tmp_path, prefix)
    producer = Producer(settings, transport=fulmen.producers.transport_for(settings))
    sent = all_events()
    for event in sent:
        producer.emit(event)
    assert producer.flush(30)
    producer.close()
    received = _consume(bootstrap_servers, settings.topics.event_topics(), len(sent))
    assert sorted(_events(received), key=lambda e: e.meta.sequence) == sent
    for consumed in received:
        assert consumed.topic == settings.topics.for_event(consumed.event.event_type)  # type: ignore[union-attr]
        assert consumed.key == b"rollout-1"


def test_per_rollout_order_holds(bootstrap_servers: str, prefix: str, tmp_path: Path) -> None:
    settings = _settings(bootstrap_servers, tmp_path, prefix)
    producer = Producer(settings, transport=fulmen.producers.transport_for(settings))
    for i in range(5000):
        producer.emit(llm_span(f"rollout-{i % 37}", i))
    assert producer.flush(60)
    producer.close()
    received = _consume(bootstrap_servers, [settings.topics.for_event("span")], 5000)
    assert len(received) == 5000
    by_rollout: dict[bytes, list[int]] = {}
    partitions: dict[bytes, set[int]] = {}
    for consumed in received:
        by_rollout.setdefault(consumed.key, []).append(consumed.event.meta.sequence)  # type: ignore[union-attr]
        partitions.setdefault(consumed.key, set()).add(consumed.partition)
    assert len(by_rollout) == 37
    for sequences in by_rollout.values():
        assert sequences == sorted(sequences)
    assert all(len(p) == 1 for p in partitions.values())
    assert len(set().union(*partitions.values())) > 1


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[KafkaBroker]:
    """A broker this test may stop and restart."""
    broker = KafkaBroker(data_dir=tmp_path / "kafka")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.mark.parametrize("durability", ["memory", "spill_on_outage"])
def test_broker_down_for_20s_loses_nothing(
    own_broker: KafkaBroker, tmp_path: Path, durability: Durability
) -> None:
    """`memory` delivers exactly once; `spill_on_outage` at least once: what it took back
    from librdkafka may have reached the broker just before it went down, and is sent again
    (consumers deduplicate by event id)."""
    bootstrap = own_broker.bootstrap_servers
    settings = _settings(
        bootstrap, tmp_path / "spill", "outage.", **{"queue.buffering.max.messages": "2000"}
    )
    settings.producer.durability = durability
    create_topics(settings.kafka, settings.topics.event_topics())
    producer = Producer(settings, transport=fulmen.producers.transport_for(settings))
    sent: list[str] = []
    stop = threading.Event()

    def agent() -> None:
        i = 0
        while not stop.is_set():
            span = llm_span(f"rollout-{i % 11}", i)
            producer.emit(span)
            sent.append(span.meta.event_id)
            i += 1
            time.sleep(0.002)

    thread = threading.Thread(target=agent)
    thread.start()
    time.sleep(3)
    own_broker.stop()
    time.sleep(20)
    spilled_during_outage = producer.stats().spilled
    own_broker.start()
    time.sleep(3)
    stop.set()
    thread.join()
    assert producer.flush(120), producer.stats()
    stats = producer.stats()
    producer.close()

    assert spilled_during_outage > 0  # the outage outgrew librdkafka's buffer: the spill took over
    assert stats.dropped == 0
    assert stats.emitted == len(sent)
    received = _consume(bootstrap, [settings.topics.for_event("span")], len(sent), timeout_s=120)
    ids = [e.meta.event_id for e in _events(received)]
    assert set(ids) == set(sent)  # nothing lost
    if durability == "memory":
        assert len(ids) == len(sent)  # no duplicates
    else:
        assert len(ids) - len(sent) <= 2_000  # at most what librdkafka held: its buffer bound
    by_rollout: dict[bytes, list[int]] = {}
    seen: set[str] = set()
    for consumed in received:
        event = consumed.event
        assert not isinstance(event, DecodeError)
        if event.meta.event_id not in seen:  # order of first deliveries
            seen.add(event.meta.event_id)
            by_rollout.setdefault(consumed.key, []).append(event.meta.sequence)
    assert all(s == sorted(s) for s in by_rollout.values())


def _agent(
    bootstrap: str,
    spill: Path,
    count: int,
    ending: str,
    buffer: str = "100000",
    durability: str = "memory",
) -> dict[str, Any]:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.support.kafka_agent",
            bootstrap,
            str(spill),
            str(count),
            ending,
            buffer,
            durability,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )
    assert result.stdout, result.stderr
    report: dict[str, Any] = json.loads(result.stdout.splitlines()[-1])
    report["log"] = result.stderr[-4000:]
    return report


def test_killed_agent_resends_spilled_events_on_restart(
    own_broker: KafkaBroker, tmp_path: Path
) -> None:
    bootstrap = own_broker.bootstrap_servers
    spill = tmp_path / "spill"
    create_topics(KafkaSettings(bootstrap_servers=bootstrap), ["fulmen.spans"])
    own_broker.stop()
    # Broker down, a 10-message librdkafka buffer: almost everything goes to the spill, then
    # the process is SIGKILLed (what sat in memory is gone; what was spilled is on disk).
    crashed = _agent(bootstrap, spill, 300, "kill", buffer="10", durability="memory")
    assert crashed["spilled"] >= 290
    assert list(spill.rglob("*.spill"))
    own_broker.start()
    restarted = _agent(bootstrap, spill, 0, "flush")
    assert restarted["spill_slot"] == crashed["spill_slot"], (crashed, restarted)
    assert restarted["flushed"], restarted
    assert restarted["resent"] == crashed["spilled"], restarted
    assert not list(spill.rglob("*.spill"))
    received = _consume(bootstrap, ["fulmen.spans"], crashed["spilled"])
    events = _events(received)
    assert len(events) == crashed["spilled"]
    assert len({e.meta.event_id for e in events}) == len(events)


@pytest.mark.parametrize("durability", ["spill_on_outage", "write_ahead"])
def test_agent_killed_during_an_outage_loses_nothing_with_durability(
    own_broker: KafkaBroker, tmp_path: Path, durability: Durability
) -> None:
    bootstrap = own_broker.bootstrap_servers
    spill = tmp_path / "spill"
    create_topics(KafkaSettings(bootstrap_servers=bootstrap), ["fulmen.spans"])
    own_broker.stop()
    # librdkafka's buffer holds all 300 (with `memory` a SIGKILL would lose them all);
    # spill_on_outage moves them to disk after 1 s without progress, write_ahead at once.
    crashed = _agent(bootstrap, spill, 300, "kill-spilled", durability=durability)
    assert crashed["spilled"] >= 300
    own_broker.start()
    restarted = _agent(bootstrap, spill, 0, "flush")
    assert restarted["spill_slot"] == crashed["spill_slot"], (crashed, restarted)
    assert restarted["flushed"], restarted
    assert not list(spill.rglob("*.spill"))
    events = _events(_consume(bootstrap, ["fulmen.spans"], 300))
    assert sorted(e.meta.sequence for e in events) == list(range(300))
    assert restarted["resent"] == 300
    assert (restarted["failed"], restarted["dropped"], restarted["oversize"]) == (0, 0, 0)


def test_graceful_exit_spills_and_the_next_run_resends_everything(
    own_broker: KafkaBroker, tmp_path: Path
) -> None:
    bootstrap = own_broker.bootstrap_servers
    spill = tmp_path / "spill"
    create_topics(KafkaSettings(bootstrap_servers=bootstrap), ["fulmen.spans"])
    own_broker.stop()
    exited = _agent(bootstrap, spill, 500, "exit")  # atexit: flush 1 s, then spill the rest
    assert exited["emitted"] == 500
    own_broker.start()
    _agent(bootstrap, spill, 0, "flush")
    events = _events(_consume(bootstrap, ["fulmen.spans"], 500))
    assert sorted(e.meta.sequence for e in events) == list(range(500))


def test_corrupt_bytes_are_reported_not_fatal(
    bootstrap_servers: str, prefix: str, tmp_path: Path
) -> None:
    settings = _settings(bootstrap_servers, tmp_path, prefix)
    topic = settings.topics.for_event("span")
    raw = RawProducer({"bootstrap.servers": bootstrap_servers})
    producer = Producer(settings, transport=fulmen.producers.transport_for(settings))
    producer.emit(llm_span("r", 0))
    assert producer.flush(30)
    for garbage in (b"", b"not avro at all", b"\xc3\x01" + b"\x00" * 8 + b"x", b"\xc3\x01\x01\x02"):
        raw.produce(topic, garbage, b"r")
    raw.flush(30)
    producer.emit(llm_span("r", 1))
    assert producer.flush(30)
    producer.close()
    received = _consume(bootstrap_servers, [topic], 6)
    problems = [c.event.problem for c in received if isinstance(c.event, DecodeError)]
    good = [c.event.meta.sequence for c in received if not isinstance(c.event, DecodeError)]
    assert problems == ["truncated", "bad_magic", "unknown_fingerprint", "truncated"]
    assert good == [0, 1]


def _span_of(rollout: str, sequence: int, payload_bytes: int) -> Span:
    """A span whose input is `payload_bytes` random letters (lz4 cannot shrink it much)."""
    span = llm_span(rollout, sequence)
    assert span.llm is not None
    text = "".join(random.Random(sequence).choices(string.ascii_letters, k=payload_bytes))
    return span.model_copy(update={"llm": span.llm.model_copy(update={"input_messages": text})})


@pytest.mark.parametrize("limit", ["max_event_bytes", "librdkafka"])
def test_an_oversize_span_in_a_burst_is_refused_alone_and_reported(
    bootstrap_servers: str, prefix: str, tmp_path: Path, limit: str
) -> None:
    settings = _settings(bootstrap_servers, tmp_path, prefix)
    if limit == "librdkafka":  # the SDK would let it through: librdkafka's produce() raises
        settings = _settings(
            bootstrap_servers, tmp_path, prefix, **{"message.max.bytes": "1000000"}
        )
        settings.producer.max_event_bytes = 4_000_000
    producer = Producer(settings, transport=fulmen.producers.transport_for(settings))
    burst = [llm_span(f"rollout-{i % 7}", i) for i in range(401)]
    burst[200] = _span_of("rollout-big", 200, 1_200_000)
    burst[300] = _span_of("rollout-near", 300, 990_000)  # under the limit: delivered whole
    for event in burst:
        producer.emit(event)
    assert not producer.flush(60)  # all settled, but one was refused
    stats = producer.stats()
    assert (stats.emitted, stats.delivered, stats.pending, stats.spilled) == (401, 400, 0, 0)
    if limit == "max_event_bytes":
        assert (stats.oversize, stats.failed) == (1, 0)
    else:
        assert (stats.oversize, stats.failed) == (0, 1)
    assert stats.dropped == 0
    assert producer.flush(5)  # the loss was reported; nothing new since
    producer.close()
    events = _events(_consume(bootstrap_servers, [settings.topics.for_event("span")], 400))
    assert sorted(e.meta.sequence for e in events) == [i for i in range(401) if i != 200]
