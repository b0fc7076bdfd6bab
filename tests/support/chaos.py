"""The fault suite's scenario: good traffic through the producer SDK while the broker, the
worker and the store fail, with bad messages injected beside it; then what the store must
hold. `tests/integration/test_faults.py` runs it at the CI size, `make chaos` at `long`."""

from __future__ import annotations

import math
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import Message
from confluent_kafka import Producer as RawProducer

from fulmen.local import KafkaBroker
from fulmen.producers import FulmenSettings, Producer, transport_for
from fulmen.schemas import Event, Reward, SingleObjectCodec, Span
from fulmen.store import LightningStore
from tests.support.events import llm_span, meta, rollout
from tests.support.stack import Stack, Worker, wait_for


@dataclass(frozen=True)
class ChaosPlan:
    rollouts: int
    broker_outage_s: float
    store_outage_s: float


PLANS = {
    "ci": ChaosPlan(rollouts=500, broker_outage_s=12, store_outage_s=10),
    "long": ChaosPlan(rollouts=5_000, broker_outage_s=60, store_outage_s=45),
}


def reward_of(index: int) -> float:
    """The reward rollout `index` earns: every value appears, 0.0 included."""
    return (index % 5) * 0.25


def good_rollout(index: int) -> list[Event]:
    events = rollout(f"c{index:05d}", calls=3)
    return [
        e.model_copy(update={"value": reward_of(index)}) if isinstance(e, Reward) else e
        for e in events
    ]


@dataclass
class Injected:
    """Bad messages put on the input topics, and where each landed."""

    expected: dict[str, str] = field(default_factory=dict)
    """`topic/partition/offset` → the dead letter's expected problem."""


class BadTraffic:
    """Writes each kind of bad message the worker must dead-letter, with a plain producer
    (the SDK refuses to send most of them)."""

    def __init__(self, bootstrap: str, stack: Stack) -> None:
        self._topics = stack.topics
        self._codec = SingleObjectCodec()
        self._producer = RawProducer(
            {
                "bootstrap.servers": bootstrap,
                "compression.type": "lz4",
                "message.max.bytes": 100_000_000,
                "acks": "all",
            }
        )
        self.injected = Injected()

    def inject(self, tag: str) -> None:
        spans, rewards = self._topics.for_event("span"), self._topics.for_event("reward")
        valid = self._codec.encode(llm_span(f"bad-{tag}", 0), topic=spans)
        reward = Reward(meta=meta(f"bad-{tag}", 1), value=1.0)
        nan = Reward.model_construct(**{**dict(reward), "value": math.nan})
        inf = Reward.model_construct(**{**dict(reward), "value": -math.inf})
        backwards = Span.model_construct(
            **{**dict(llm_span(f"bad-{tag}", 2)), "end_time_unix_nano": 1}
        )
        cases: list[tuple[str, bytes, str]] = [
            (spans, b"garbage", "truncated"),
            (spans, b"\x07" * 40, "bad_magic"),
            (spans, b"\xc3\x01" + bytes(8) + b"unknown schema", "unknown_fingerprint"),
            (spans, valid[:-7], "corrupt_payload"),
            (spans, self._encode(llm_span(f"bad-{tag}", 3, payload=1_200_000)), "too_large"),
            (spans, self._encode(reward), "wrong_topic"),
            (rewards, valid, "wrong_topic"),
            (rewards, self._encode(nan), "invalid_event"),
            (rewards, self._encode(inf), "invalid_event"),
            (spans, self._encode(backwards), "invalid_event"),
        ]
        for topic, value, problem in cases:
            self._producer.produce(
                topic, key=f"bad-{tag}".encode(), value=value, on_delivery=self._landed(problem)
            )
        assert self._producer.flush(60) == 0

    def _encode(self, event: Event) -> bytes:
        return self._codec.encode(event, topic="")

    def _landed(self, problem: str) -> Callable[[Any, Message], None]:
        def landed(error: Any, message: Message) -> None:
            assert error is None, error
            source = f"{message.topic()}/{message.partition()}/{message.offset()}"
            self.injected.expected[source] = problem

        return landed


def sdk_producer(bootstrap: str, stack: Stack, spill: Path) -> Producer:
    settings = FulmenSettings(
        transport="kafka",
        kafka={"bootstrap_servers": bootstrap},
        topics={"prefix": stack.prefix},
        producer={"spill_dir": spill, "capture_openai": False, "follow_versions": False},
    )
    return Producer(settings, transport=transport_for(settings))


def latest_rewards(store: LightningStore) -> dict[str, float]:
    db = store.settings.database
    rows = store.sql(
        f"SELECT rollout_id, argMax(reward, revision) AS reward FROM {db}.episodes "
        "WHERE rollout_id LIKE 'c%' GROUP BY rollout_id"
    ).to_pylist()
    return {row["rollout_id"]: row["reward"] for row in rows}


def episodes_done(store: LightningStore, expected: int) -> bool:
    try:
        return len(latest_rewards(store)) >= expected
    except Exception:  # the store is away or the database not created yet
        return False


def run(plan: ChaosPlan, root: Path) -> tuple[Stack, Injected]:
    """Run the scenario; returns the stack (its store still running) and what was injected."""
    broker = KafkaBroker(data_dir=root / "kafka")
    broker.start()
    try:
        return _run(plan, root, broker)
    finally:
        broker.stop()


def _run(plan: ChaosPlan, root: Path, broker: KafkaBroker) -> tuple[Stack, Injected]:
    bootstrap = broker.bootstrap_servers
    # No topic exists: the SDK's first events create the inputs, the worker the rest.
    stack = Stack(root, bootstrap, "chaos.", create_topics=False)
    stack.start_store()
    sdk = sdk_producer(bootstrap, stack, root / "spill")
    bad = BadTraffic(bootstrap, stack)
    phases = [range(i * plan.rollouts // 5, (i + 1) * plan.rollouts // 5) for i in range(5)]

    def emit(phase: int) -> None:
        for index in phases[phase]:
            for event in good_rollout(index):
                sdk.emit(event)

    worker = stack.worker("chaos", "chaos", session_timeout_s="8", idle_timeout_s="60")
    emit(0)
    assert sdk.flush(60)
    worker.start()
    bad.inject("a")
    store = stack.client("chaos")
    wait_for(lambda: episodes_done(store, 1), timeout_s=180, what="the first episode")

    emit(1)  # the worker is killed mid-stream
    time.sleep(1.0)
    _kill_and_restart(worker)
    done = _progress(store, plan, phases)
    done(1)  # the restarted worker caught up, and runs while the broker goes away

    broker.stop()  # the SDK holds (or spills) phase 2 until the broker is back
    emit(2)
    time.sleep(plan.broker_outage_s)
    broker.start()
    done(2)

    stack.store.stop()  # the worker retries its writes until the store is back
    emit(3)
    time.sleep(plan.store_outage_s)
    stack.start_store()
    done(3)

    emit(4)
    time.sleep(0.5)
    _kill_and_restart(worker)
    bad.inject("b")
    try:
        assert sdk.flush(120), sdk.stats()
        wait_for(
            lambda: episodes_done(store, plan.rollouts),
            timeout_s=120 + plan.rollouts / 10,
            what=f"{plan.rollouts} episodes",
        )
        time.sleep(3)  # anything written twice would show by now
    finally:
        worker.stop()
        sdk.close()
    return stack, bad.injected


def _progress(store: LightningStore, plan: ChaosPlan, phases: list[range]) -> Callable[[int], None]:
    def done(phase: int) -> None:
        wait_for(
            lambda: episodes_done(store, phases[phase].stop),
            timeout_s=120 + plan.rollouts / 10,
            what=f"the episodes of phases 0-{phase}",
        )

    return done


def _kill_and_restart(worker: Worker) -> None:
    worker.stop(signal.SIGKILL)
    worker.start()
