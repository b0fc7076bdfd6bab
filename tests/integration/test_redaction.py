"""Redaction with real parts: what an agent (the SDK) and the gateway send to the session's
Kafka broker, what they spill, and what the embedded runner writes to chDB never holds the
redacted values; the counts say what was masked; a failing redactor loses the event."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import Consumer
from prometheus_client import CollectorRegistry, generate_latest

import fulmen
from fulmen.kafka import KafkaSettings, create_topics
from fulmen.producers import FulmenSettings, InProcessBus, Producer, ProducerCollector
from fulmen.producers.gateway import GatewaySettings, gateway_in_thread, open_gateway
from fulmen.store import LightningStore
from fulmen.streams import AssemblyPolicy, EmbeddedRunner
from tests.support.events import llm_span
from tests.support.openai_server import OpenAIServer

pytestmark = pytest.mark.integration

EMAIL = "jane.doe@example.com"
CARD = "4111 1111 1111 1111"
KEY = "sk-proj-" + "Q" * 32
SECRETS = (EMAIL.encode(), CARD.encode(), KEY.encode(), b"4111111111111111")
REDACT = "fulmen.producers.redaction:redact_pii"


def _prefix(bootstrap: str) -> str:
    name = f"t{uuid.uuid4().hex[:8]}."
    topics = FulmenSettings(topics={"prefix": name}).topics
    create_topics(KafkaSettings(bootstrap_servers=bootstrap), topics.event_topics())
    return name


def _raw_values(bootstrap: str, prefix: str, expected: int) -> list[bytes]:
    """The message values on the prefix's event topics, as bytes, undecoded."""
    topics = FulmenSettings(topics={"prefix": prefix}).topics.event_topics()
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": uuid.uuid4().hex,
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe(list(topics))
    values: list[bytes] = []
    try:
        for _ in range(240):  # up to 2 minutes on a busy machine
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                values.append(message.value() or b"")
            if len(values) >= expected and message is None:
                break
    finally:
        consumer.close()
    return values


def _settings(bootstrap: str, prefix: str, spill: Path, **producer: Any) -> FulmenSettings:
    return FulmenSettings(
        transport="kafka",
        kafka={"bootstrap_servers": bootstrap},
        topics={"prefix": prefix},
        producer={
            "spill_dir": spill,
            "capture_openai": False,
            "follow_versions": False,
            "redact": REDACT,
        }
        | producer,
    )


def _spilled(spill: Path) -> bytes:
    return b"".join(path.read_bytes() for path in spill.rglob("*") if path.is_file())


def test_the_sdk_sends_and_spills_only_redacted_text(
    bootstrap_servers: str, tmp_path: Path
) -> None:
    prefix = _prefix(bootstrap_servers)
    spill = tmp_path / "spill"
    # write_ahead: every event also goes through the spill files.
    settings = _settings(bootstrap_servers, prefix, spill, durability="write_ahead")
    fulmen.configure(settings)

    @fulmen.tool
    def lookup(email: str) -> str:
        return f"card on file: {CARD}"

    @fulmen.rollout(task_id="support", user_id="u-1")
    def agent(question: str) -> str:
        return lookup(EMAIL)

    try:
        agent(f"my key is {KEY}, mail {EMAIL}")
        producer = fulmen.get_producer()
        producer.emit(
            llm_span().model_copy(
                update={
                    "llm": llm_span().llm.model_copy(  # type: ignore[union-attr]
                        update={"input_messages": f'[{{"role": "user", "content": "{EMAIL}"}}]'}
                    )
                }
            )
        )
        assert producer.flush(60)
        _assert_spill_had_everything(spill, producer)
        stats = producer.stats()
        registry = CollectorRegistry()
        registry.register(ProducerCollector(producer))
        metrics = generate_latest(registry).decode()
    finally:
        fulmen.shutdown()

    values = _raw_values(bootstrap_servers, prefix, stats.delivered)
    assert len(values) == stats.delivered == 5  # started, tool span, root span, finished, LLM
    raw = b"".join(values)
    for secret in SECRETS:
        assert secret not in raw
    assert b"[EMAIL]" in raw
    assert b"[CARD]" in raw
    assert b"[API_KEY]" in raw
    # The rollout's input (on `started`), the tool's arguments and result, the LLM call's
    # prompt; the LLM call's token ids were dropped.
    assert stats.redacted == {"email": 3, "api_key": 1, "card": 1, "token_ids": 1}
    assert 'fulmen_producer_redactions_total{kind="email"} 3.0' in metrics
    assert 'fulmen_producer_redactions_total{kind="token_ids"} 1.0' in metrics


def _assert_spill_had_everything(spill: Path, producer: Producer) -> None:
    assert producer.stats().spilled == 5
    for secret in SECRETS:
        assert secret not in _spilled(spill)


def test_the_gateway_records_only_redacted_text(bootstrap_servers: str, tmp_path: Path) -> None:
    prefix = _prefix(bootstrap_servers)
    with OpenAIServer() as upstream:
        gateway = open_gateway(
            GatewaySettings(upstream_url=upstream.base_url),
            _settings(bootstrap_servers, prefix, tmp_path),
        )
        try:
            with gateway_in_thread(gateway) as url:
                response = httpx.post(
                    f"{url}/rollouts/r-{uuid.uuid4().hex[:8]}/v1/chat/completions",
                    json={
                        "model": "tiny",
                        "messages": [{"role": "user", "content": f"I am {EMAIL}, key {KEY}"}],
                    },
                    timeout=60,
                )
                assert response.status_code == 200
                # The agent's request reached the upstream as it was: redaction is of the
                # record, not of the traffic.
                assert EMAIL in upstream.requests[0]["messages"][0]["content"]
                assert gateway.producer.flush(60)
                stats = httpx.get(f"{url}/fulmen/stats").json()["producer"]
                metrics = httpx.get(f"{url}/metrics").text
        finally:
            gateway.close(30)
    values = _raw_values(bootstrap_servers, prefix, stats["delivered"])
    assert len(values) == stats["delivered"] >= 1
    raw = b"".join(values)
    assert EMAIL.encode() not in raw
    assert KEY.encode() not in raw
    assert stats["redacted"] == {"email": 1, "api_key": 1, "token_ids": 1}
    assert 'fulmen_producer_redactions_total{kind="api_key"} 1.0' in metrics


def _strings_in_store(store: LightningStore) -> str:
    db = store.settings.database
    texts = []
    for table in ("spans", "rewards", "rollouts", "episodes", "triplets"):
        rows = store.sql(f"SELECT * FROM {db}.{table}").to_pylist()
        texts.append(repr(rows))
    return "\n".join(texts)


def test_the_store_holds_only_redacted_text(
    new_store: Callable[[], LightningStore], tmp_path: Path
) -> None:
    store = new_store()
    bus = InProcessBus()
    fulmen.configure(FulmenSettings(producer={"spill_dir": tmp_path, "redact": REDACT}), bus=bus)

    @fulmen.rollout(task_id="t", user_id="u-1")
    def agent(question: str) -> int:
        fulmen.emit_reward(1.0)
        return 1

    try:
        agent(f"{EMAIL} / {CARD}")
        assert fulmen.get_producer().flush(5)
        assert fulmen.get_producer().stats().redacted == {"email": 1, "card": 1}
    finally:
        fulmen.shutdown()
    EmbeddedRunner(bus, store, policy=AssemblyPolicy(grace_s=0.0)).finish()
    held = _strings_in_store(store)
    assert "[EMAIL] / [CARD]" in held
    assert EMAIL not in held
    assert CARD not in held
    user = store.sql(f"SELECT metadata['user_id'] AS u FROM {store.settings.database}.rollouts")
    assert set(user["u"].to_pylist()) == {"u-1"}


def test_a_redactor_that_fails_loses_the_event_and_counts_it(tmp_path: Path) -> None:
    bus = InProcessBus()
    settings = FulmenSettings(
        producer={"spill_dir": tmp_path, "redact": "tests.integration.test_redaction:_broken"}
    )
    producer = Producer(settings, transport=fulmen.producers.transport_for(settings, bus=bus))
    try:
        producer.emit(llm_span())
        assert not producer.flush(5)  # an event was lost
        assert producer.stats().failed == 1
    finally:
        producer.close(5)
    assert bus.read("fulmen.spans", 0, max_messages=10, timeout_s=0) == []


def _broken(text: str) -> str:
    raise ValueError(f"cannot parse {text[:10]}")
