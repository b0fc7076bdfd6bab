"""The local Kafka broker works end to end: topics, idempotent acks=all produce, consume,
restart with the same data, and Kafka's ProducerPerformance tool."""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING

from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from fulmen.local import KafkaBroker, run_producer_performance

if TYPE_CHECKING:
    from pathlib import Path


def _create_topic(bootstrap_servers: str, topic: str, partitions: int = 4) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    futures = admin.create_topics(
        [NewTopic(topic, num_partitions=partitions, replication_factor=1)]
    )
    for future in futures.values():
        future.result(timeout=30)


def _produce(bootstrap_servers: str, topic: str, values: list[bytes]) -> None:
    producer = Producer(
        {
            "bootstrap.servers": bootstrap_servers,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 5,
        }
    )
    errors: list[KafkaError] = []
    delivered: list[bytes] = []

    def on_delivery(err, msg) -> None:
        if err is not None:
            errors.append(err)
        else:
            delivered.append(msg.value())

    for i, value in enumerate(values):
        producer.produce(topic, key=str(i).encode(), value=value, on_delivery=on_delivery)
        producer.poll(0)
    assert producer.flush(30) == 0
    assert errors == []
    assert sorted(delivered) == sorted(values)


def _consume(
    bootstrap_servers: str, topic: str, expected: int, timeout_s: float = 60
) -> list[bytes]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": f"test-{uuid.uuid4()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    values: list[bytes] = []
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + timeout_s
        while len(values) < expected and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=500, timeout=1.0):
                if msg.error() is not None:
                    raise AssertionError(msg.error())
                values.append(msg.value())
    finally:
        consumer.close()
    return values


def test_produce_and_consume_1000_messages(bootstrap_servers: str) -> None:
    topic = f"smoke-{uuid.uuid4().hex[:8]}"
    _create_topic(bootstrap_servers, topic)
    values = [f"message-{i}".encode() for i in range(1000)]

    _produce(bootstrap_servers, topic, values)
    consumed = _consume(bootstrap_servers, topic, expected=len(values))

    assert sorted(consumed) == sorted(values)


def test_messages_survive_a_broker_restart(tmp_path: Path) -> None:
    broker = KafkaBroker(data_dir=tmp_path / "kafka")
    broker.start()
    try:
        port, controller_port = broker.port, broker.controller_port
        topic = "durable"
        _create_topic(broker.bootstrap_servers, topic)
        values = [f"durable-{i}".encode() for i in range(200)]
        _produce(broker.bootstrap_servers, topic, values)

        broker.restart()

        assert (broker.port, broker.controller_port) == (port, controller_port)
        consumed = _consume(broker.bootstrap_servers, topic, expected=len(values))
        assert sorted(consumed) == sorted(values)
    finally:
        broker.stop()


def test_producer_performance(bootstrap_servers: str) -> None:
    result = run_producer_performance(
        bootstrap_servers=bootstrap_servers,
        topic=f"perf-{uuid.uuid4().hex[:8]}",
        num_records=20_000,
        record_size=1024,
        acks="all",
    )

    assert result.records == 20_000
    assert result.records_per_s > 0
    assert result.mb_per_s > 0
    assert result.avg_latency_ms > 0
    assert (
        result.max_latency_ms
        >= result.p999_ms
        >= result.p99_ms
        >= result.p95_ms
        >= result.p50_ms
        >= 0
    )
