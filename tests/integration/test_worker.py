"""The stream worker end to end: the session's Kafka broker, `fulmen worker` processes and a
`fulmen store serve` process (chDB), with the store reached over HTTP as in the local stack."""

from __future__ import annotations

import random
import signal
import time
import uuid
from typing import Any

import pytest
from confluent_kafka import Consumer

from fulmen.schemas import Reward, SingleObjectCodec
from tests.support.events import meta, rollout
from tests.support.stack import Stack, wait_for
from tests.support.store_state import (
    episodes_written,
    raw_counts,
    rollout_events,
    scalar,
    store_state,
)

pytestmark = pytest.mark.timeout(600)


def test_duplicated_out_of_order_and_late_events_and_garbage(stack: Stack) -> None:
    events = rollout_events("a", 20)
    replay = events + events[::3]
    random.Random(7).shuffle(replay)
    garbage = [b"garbage", b"\xc3\x01" + bytes(8) + b"unknown schema"]
    stack.produce(replay, garbage=garbage)
    worker = stack.worker("order", "order")
    worker.start()
    try:
        store = stack.client("order")
        wait_for(lambda: episodes_written(store) >= 20, timeout_s=120, what="20 episodes")
        stack.produce([Reward(meta=meta(f"a{i}", 100), value=5.0) for i in range(5)])
        wait_for(lambda: episodes_written(store) >= 25, timeout_s=60, what="5 revised episodes")
        metrics = worker.metrics()
    finally:
        worker.stop()

    state = store_state(store)
    assert state["raw"] == raw_counts(120, 25, 40)
    assert state["episode_dupes"] == [{"v": 0}]
    assert state["triplet_dupes"] == [{"v": 0}]
    latest = {row["rollout_id"]: row for row in state["latest"]}
    assert len(latest) == 20
    assert all(latest[f"a{i}"]["reward"] == 6.0 and latest[f"a{i}"]["n"] == 10 for i in range(5))
    assert all(latest[f"a{i}"]["reward"] == 1.0 and latest[f"a{i}"]["n"] == 9 for i in range(5, 20))
    prompts = [t["prompt"] for t in state["triplets"] if t["rollout_id"] == "a7"]
    assert prompts == ["[0]", "[1]", "[2]"]  # producer sequence order, not arrival order
    assert metrics["fulmen_worker_duplicates_total"] == len(events[::3])
    assert metrics['fulmen_worker_dead_letters_total{problem="truncated"}'] == 1
    assert metrics['fulmen_worker_dead_letters_total{problem="unknown_fingerprint"}'] == 1
    assert metrics["fulmen_worker_episodes_out_total"] == 25

    dead = _read_all(stack, stack.prefix + "dlq", expected=2)
    assert sorted(value for value, _ in dead) == sorted(garbage)
    assert {headers["fulmen-problem"] for _, headers in dead} == {
        b"truncated",
        b"unknown_fingerprint",
    }
    assert all(headers["fulmen-source"].startswith(stack.prefix.encode()) for _, headers in dead)


def test_sigkill_mid_stream_then_restart_leaves_what_a_clean_run_leaves(stack: Stack) -> None:
    events = rollout_events("k", 300)
    crashed = stack.worker("crash", "crash")
    crashed.start()
    store = stack.client("crash")
    stack.produce(events[: len(events) // 2])
    wait_for(lambda: episodes_written(store) >= 20, timeout_s=120, what="the first episodes")
    stack.produce(events[len(events) // 2 :])
    time.sleep(0.5)
    crashed.stop(signal.SIGKILL)
    assert episodes_written(store) < 300, "the kill came too late to be mid-stream"
    crashed.start()
    try:
        wait_for(lambda: episodes_written(store) >= 300, timeout_s=180, what="300 episodes")
        time.sleep(3)  # a grace period: anything written twice would show now
    finally:
        crashed.stop()

    after_crash, clean_run = store_state(store), _clean_run(stack, "clean", episodes=300)
    assert after_crash["episode_dupes"] == [{"v": 0}]
    assert after_crash["triplet_dupes"] == [{"v": 0}]
    assert after_crash == clean_run
    assert clean_run["raw"] == raw_counts(1800, 300, 600)


def test_a_store_away_for_20_s_is_caught_up_with(stack: Stack) -> None:
    worker = stack.worker("outage", "outage")
    worker.start()
    try:
        store = stack.client("outage")
        stack.produce(rollout_events("before", 30))
        wait_for(lambda: episodes_written(store) >= 30, timeout_s=120, what="episodes before")
        stack.store.stop()
        stack.produce(rollout_events("during", 60))
        time.sleep(20)
        away = worker.metrics()
        stack.start_store()
        wait_for(lambda: episodes_written(store) >= 90, timeout_s=120, what="the catch-up")
        time.sleep(3)
    finally:
        worker.stop()
    assert away["fulmen_worker_store_available"] == 0
    assert away["fulmen_worker_store_retries_total"] > 0
    state = store_state(store)
    assert state["raw"] == raw_counts(540, 90, 180)
    assert state["episode_dupes"] == [{"v": 0}]
    assert state["triplet_dupes"] == [{"v": 0}]
    assert len(state["latest"]) == 90


def _read_all(
    stack: Stack, topic: str, *, expected: int, within_s: float = 30
) -> list[tuple[bytes, dict[str, bytes]]]:
    consumer = Consumer(
        {
            "bootstrap.servers": stack.bootstrap,
            "group.id": f"read-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    found: list[tuple[bytes, dict[str, bytes]]] = []
    deadline = time.monotonic() + within_s
    try:
        while len(found) < expected and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error() is not None:
                continue
            found.append((message.value() or b"", dict(message.headers() or [])))
    finally:
        consumer.close()
    return found


def test_a_restart_with_nothing_left_to_read_still_writes_dueepisodes_written(stack: Stack) -> None:
    events = rollout_events("t", 20)
    stack.produce(events)
    worker = stack.worker("tail", "tail", grace_s="10")
    worker.start()
    store = stack.client("tail")
    raw = f"SELECT count() AS v FROM {store.settings.database}.spans"
    wait_for(lambda: scalar(store, raw) == 120, timeout_s=120, what="the raw rows")
    time.sleep(4)  # past Faust's commit interval: every input offset is committed
    assert episodes_written(store) == 0, "the kill came after the grace period"
    worker.stop(signal.SIGKILL)
    worker.start()
    try:
        wait_for(lambda: episodes_written(store) >= 20, timeout_s=120, what="the buffered episodes")
    finally:
        worker.stop()
    assert len(store_state(store)["latest"]) == 20


def test_long_rollouts_over_many_batches_recover_and_write_each_event_once(stack: Stack) -> None:
    """Rollouts of 83 events, a few events a batch, the worker SIGKILLed (its offsets
    committed) and restarted mid-rollout: the episodes hold every event (those before the kill
    from the changelog), as a clean run's do, and the changelog's bytes grow with the
    events', not with their square (the whole state each batch was about 42 times more)."""
    rollouts = [rollout(f"long{i}", calls=40) for i in range(3)]
    slices = [[events[i] for events in rollouts] for i in range(len(rollouts[0]))]
    worker = stack.worker("long", "long")
    worker.start()
    store = stack.client("long")
    try:
        for events in slices[:50]:
            stack.produce(events)
            time.sleep(0.3)  # longer than the worker's batch wait: a batch each, mostly
        time.sleep(4)  # past Faust's commit interval: every input offset is committed
        worker.stop(signal.SIGKILL)
        worker.start()
        for events in slices[50:]:
            stack.produce(events)
            time.sleep(0.3)
        wait_for(lambda: episodes_written(store) >= 3, timeout_s=120, what="the long episodes")
        time.sleep(3)
    finally:
        worker.stop()
    codec = SingleObjectCodec()
    event_bytes = sum(len(codec.encode(e, topic="")) for events in rollouts for e in events)
    changelog = _read_all(stack, "long-rollout-buffers-changelog", expected=10**6, within_s=10)
    assert len(changelog) > 80, "a few records a batch"
    assert sum(len(value) for value, _ in changelog) < 2 * event_bytes

    after_kill, clean_run = store_state(store), _clean_run(stack, "long_clean", episodes=3)
    assert [row["n"] for row in after_kill["latest"]] == [83, 83, 83]
    assert after_kill == clean_run


def _clean_run(stack: Stack, name: str, *, episodes: int) -> dict[str, Any]:
    """What a worker of its own (app id and database `name`) leaves in the store after
    reading every input from the start."""
    clean = stack.worker(name, name)
    clean.start()
    try:
        store = stack.client(name)
        wait_for(lambda: episodes_written(store) >= episodes, timeout_s=180, what="a clean run")
        time.sleep(3)  # a grace period: anything written twice would show now
    finally:
        clean.stop()
    return store_state(store)
