"""Bad and unusual input on a real broker, `fulmen worker` and `fulmen store serve`: events on
the wrong topic, messages over the size limits, registry-framed events, topics that do not
exist yet. The worker turns what it cannot use into dead letters (on the DLQ topic and in the
store) and loses, skips or repeats nothing else."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from fulmen.schemas import ConfluentCodec, Event, Span
from fulmen.store import LightningStore
from tests.support.events import llm_span, rollout
from tests.support.registry import schema_registry
from tests.support.stack import Stack, wait_for

pytestmark = pytest.mark.timeout(600)


def _count(store: LightningStore, table: str, where: str = "1") -> int:
    sql = f"SELECT count() AS v FROM {store.settings.database}.{table} WHERE {where}"
    try:
        return int(store.sql(sql).to_pylist()[0]["v"])
    except Exception:  # the database appears with the worker's first write
        return 0


def _rollouts(prefix: str, count: int, **options: Any) -> list[Event]:
    return [event for i in range(count) for event in rollout(f"{prefix}{i}", **options)]


def _dead(store: LightningStore) -> dict[str, int]:
    sql = f"SELECT problem, count() AS n FROM {store.settings.database}.dead_letters GROUP BY 1"
    return {row["problem"]: row["n"] for row in store.sql(sql).to_pylist()}


def test_misrouted_events_are_dead_letters_and_hide_no_later_event(stack: Stack) -> None:
    """Rewards on the spans topic (at offsets far beyond the rewards topic's) and spans on
    the rewards topic, between two runs of good traffic: every good event is stored."""
    stack.produce(_rollouts("before", 60))  # spans run ahead of rewards: 6 to 1 per rollout
    misrouted = _rollouts("mis", 8)
    rewards = [e for e in misrouted if e.event_type == "reward"]
    spans = [e for e in misrouted if e.event_type == "span"][:20]
    stack.produce(rewards, topic=stack.topics.for_event("span"))
    stack.produce(spans, topic=stack.topics.for_event("reward"))
    stack.produce(_rollouts("after", 200))
    worker = stack.worker("misrouted", "misrouted")
    worker.start()
    try:
        store = stack.client("misrouted")
        wait_for(lambda: _count(store, "episodes") >= 260, timeout_s=240, what="260 episodes")
        metrics = worker.metrics()
    finally:
        worker.stop()
    assert _count(store, "rewards") == 260
    assert _count(store, "spans") == 260 * 6
    assert _count(store, "rewards", "rollout_id LIKE 'mis%'") == 0
    assert _dead(store) == {"wrong_topic": 28}
    assert metrics['fulmen_worker_dead_letters_total{problem="wrong_topic"}'] == 28


def _big_span(rollout_id: str, sequence: int, size: int) -> Span:
    return llm_span(rollout_id, sequence, payload=size)  # compressible: passes the broker


def test_oversize_messages_and_rollouts_are_dead_letters_and_stop_nothing(stack: Stack) -> None:
    too_large = _big_span("huge", 0, 1_200_000)
    near_limit = _big_span("near", 0, 990_000)
    stack.produce([too_large, near_limit])
    # 9 spans of 400 kB in one rollout: the budget (1.5 MB) takes 3, refuses the rest.
    stack.produce([_big_span("fat", i, 400_000) for i in range(9)])
    stack.produce(_rollouts("good", 100))
    worker = stack.worker("big", "big", max_rollout_bytes="1500000", idle_timeout_s="3")
    worker.start()
    try:
        store = stack.client("big")
        wait_for(lambda: _count(store, "episodes") >= 100, timeout_s=240, what="good episodes")
        wait_for(lambda: _count(store, "dead_letters") >= 7, timeout_s=60, what="dead letters")
        wait_for(
            lambda: _count(store, "episodes", "rollout_id IN ('near', 'fat')") >= 2,
            timeout_s=60,
            what="the big rollouts' episodes",
        )
    finally:
        worker.stop()
    assert _dead(store) == {"too_large": 1, "rollout_too_large": 6}
    db = store.settings.database
    (row,) = store.sql(
        f"SELECT length(value) AS n, detail FROM {db}.dead_letters WHERE problem = 'too_large'"
    ).to_pylist()
    assert row["n"] == 4096
    assert "keeps the first 4096" in row["detail"]
    assert _count(store, "spans", "rollout_id = 'near'") == 1
    assert _count(store, "spans", "rollout_id = 'fat'") == 3
    assert _count(store, "spans", "rollout_id = 'huge'") == 0


def test_registry_framed_and_single_object_events_are_both_read(stack: Stack) -> None:
    with schema_registry() as url:
        stack.produce(_rollouts("confluent", 20), codec=ConfluentCodec.from_url(url))
        stack.produce(_rollouts("single", 20))
        worker = stack.worker("framing", "framing")
        worker.env["FULMEN_SCHEMA_REGISTRY__URL"] = url
        worker.start()
        try:
            store = stack.client("framing")
            wait_for(lambda: _count(store, "episodes") >= 40, timeout_s=180, what="40 episodes")
        finally:
            worker.stop()
    assert _count(store, "dead_letters") == 0
    assert _count(store, "rewards", "rollout_id LIKE 'confluent%'") == 20


def test_a_worker_without_a_registry_dead_letters_registry_framed_events(stack: Stack) -> None:
    with schema_registry() as url:
        stack.produce(_rollouts("confluent", 2), codec=ConfluentCodec.from_url(url))
    stack.produce(_rollouts("single", 5))
    worker = stack.worker("noregistry", "noregistry")
    worker.start()
    try:
        store = stack.client("noregistry")
        wait_for(lambda: _count(store, "episodes") >= 5, timeout_s=180, what="5 episodes")
        wait_for(lambda: _count(store, "dead_letters") >= 18, timeout_s=60, what="dead letters")
    finally:
        worker.stop()
    assert _dead(store) == {"registry": 18}


def test_topics_that_do_not_exist_yet_are_created_and_read(
    tmp_path: Path, bootstrap_servers: str
) -> None:
    """Nothing exists when the worker starts: it creates what it reads and writes, and the
    first dead letter and episode go out without a hitch."""
    fresh = Stack(tmp_path, bootstrap_servers, f"n{uuid.uuid4().hex[:8]}.", create_topics=False)
    fresh.start_store()
    worker = fresh.worker("fresh", "fresh")
    worker.start()
    try:
        store = fresh.client("fresh")
        wait_for(worker.answers, timeout_s=120, what="the worker's web server")
        fresh.produce(_rollouts("new", 30), garbage=[b"garbage"])
        wait_for(lambda: _count(store, "episodes") >= 30, timeout_s=180, what="30 episodes")
        wait_for(lambda: _count(store, "dead_letters") >= 1, timeout_s=60, what="a dead letter")
        assert _dead(store) == {"truncated": 1}
    finally:
        worker.stop()
        fresh.store.stop()


def test_a_worker_started_while_the_store_is_down_waits_for_it(stack: Stack) -> None:
    stack.store.stop()
    stack.produce(_rollouts("early", 10))
    worker = stack.worker("nostore", "nostore")
    worker.start()
    try:
        wait_for(worker.answers, timeout_s=120, what="the worker's web server")
        wait_for(
            lambda: worker.metrics()["fulmen_worker_store_retries_total"] > 0,
            timeout_s=60,
            what="a retried connection",
        )
        stack.start_store()
        store = stack.client("nostore")
        wait_for(lambda: _count(store, "episodes") >= 10, timeout_s=120, what="10 episodes")
    finally:
        worker.stop()
