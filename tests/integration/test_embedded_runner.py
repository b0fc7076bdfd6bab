"""The embedded default's stream stage: SDK → in-process bus → runner → chDB store."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

import fulmen
from fulmen.producers import FulmenSettings, InProcessBus
from fulmen.schemas import EpisodeCompleted, SingleObjectCodec
from fulmen.store import LightningStore
from fulmen.streams import AssemblyPolicy, EmbeddedRunner

pytestmark = pytest.mark.integration


def _count(store: LightningStore, table: str) -> int:
    return int(
        store.sql(f"SELECT count() AS n FROM {store.settings.database}.{table}")["n"][0].as_py()
    )


def test_agent_events_become_episodes_triplets_and_dead_letters(
    new_store: Callable[[], LightningStore], tmp_path: Path
) -> None:
    store = new_store()
    bus = InProcessBus()
    fulmen.configure(
        FulmenSettings(producer={"spill_dir": tmp_path, "agent_name": "calc"}), bus=bus
    )

    @fulmen.tool
    def add(a: int, b: int) -> int:
        return a + b

    @fulmen.rollout(task_id=lambda a, b: f"{a}+{b}")
    def agent(a: int, b: int) -> int:
        result = add(a, b)
        fulmen.emit_reward(1.0 if result == a + b else 0.0)
        return result

    for i in range(10):
        agent(i, 1)
    assert fulmen.get_producer().flush(5)
    fulmen.shutdown()
    spans = bus.read("fulmen.spans", 0, max_messages=3, timeout_s=0)
    for message in spans:  # replayed messages: the same events again
        bus.append("fulmen.spans", message.key, message.value)
    bus.append("fulmen.spans", b"r", b"garbage, not an Avro event")

    runner = EmbeddedRunner(bus, store, policy=AssemblyPolicy(grace_s=0.0))
    runner.finish()

    assert runner.stats.dead_letters == 1
    assert runner.stats.duplicates == 3
    assert runner.stats.episodes_out == 10
    assert _count(store, "spans") == 20  # a tool span and a root span per rollout, once each
    assert _count(store, "rewards") == 10
    assert _count(store, "rollouts") == 20
    assert _count(store, "episodes") == 10
    assert _count(store, "dead_letters") == 1
    problem = store.sql(f"SELECT problem FROM {store.settings.database}.dead_letters")
    assert problem["problem"].to_pylist() == ["bad_magic"]
    rates = store.sql(
        f"SELECT task_id, success_rate FROM {store.settings.database}.success_by_agent_task"
    )
    assert rates.num_rows == 10
    assert len(bus.read("fulmen.spans", 0, max_messages=100, timeout_s=0)) == 0  # released
    codec = SingleObjectCodec()
    completed = [
        codec.decode(m.value, topic="fulmen.episodes")
        for m in bus.read("fulmen.episodes", 0, max_messages=100, timeout_s=0)
    ]
    assert len(completed) == 10
    assert all(isinstance(e, EpisodeCompleted) and e.revision == 0 for e in completed)
    assert {e.meta.agent_name for e in completed} == {"calc"}


def test_two_runs_into_one_store_keep_both_runs_events(
    new_store: Callable[[], LightningStore], tmp_path: Path
) -> None:
    """Each run's bus starts at offset 0; its writes must not be taken for the other's."""
    store = new_store()

    @fulmen.rollout(task_id="1+1")
    def agent() -> int:
        fulmen.emit_reward(1.0)
        return 2

    for run in range(2):
        bus = InProcessBus()
        settings = FulmenSettings(producer={"spill_dir": tmp_path / str(run), "agent_name": "c"})
        fulmen.configure(settings, bus=bus)
        agent()
        assert fulmen.get_producer().flush(5)
        fulmen.shutdown()
        EmbeddedRunner(bus, store, policy=AssemblyPolicy(grace_s=0.0)).finish()

    assert _count(store, "rewards") == 2
    assert _count(store, "rollouts") == 4
    assert _count(store, "episodes") == 2
