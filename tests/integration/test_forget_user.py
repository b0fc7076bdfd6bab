"""Forgetting a user on the embedded store (chDB), fed by the embedded runner: the user's
rollouts leave every table and every window exported afterwards, also what arrives late;
other users' rollouts stay; `fulmen store forget` does the same from the command line."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from fulmen.producers import FulmenSettings, InProcessBus
from fulmen.schemas import Event, Feedback, RolloutEvent, SingleObjectCodec
from fulmen.store import ForgetError, LightningStore, WindowQuery
from fulmen.streams import AssemblyPolicy, EmbeddedRunner
from tests.support.events import meta, rollout

pytestmark = pytest.mark.integration

TABLES = ("spans", "rewards", "rollouts", "feedback", "episodes", "triplets", "dead_letters")


def _of_user(rollout_id: str, user_id: str) -> list[Event]:
    """A rollout (3 LLM calls, 3 tool calls, a reward, the user's thumbs up) whose lifecycle
    names `user_id`."""
    thumbs = Feedback(meta=meta(rollout_id, 99), thumbs_up=True, comment=f"from {user_id}")
    return [
        event.model_copy(update={"metadata": {"user_id": user_id}})
        if isinstance(event, RolloutEvent)
        else event
        for event in rollout(rollout_id)
    ] + [thumbs]


def _send(bus: InProcessBus, events: list[Event]) -> None:
    topics = FulmenSettings().topics
    codec = SingleObjectCodec()
    for event in events:
        topic = topics.for_event(event.event_type)
        bus.append(topic, event.meta.rollout_id.encode(), codec.encode(event, topic=topic))


def _rows(store: LightningStore, table: str, rollout_ids: list[str]) -> int:
    column = "key" if table == "dead_letters" else "rollout_id"
    result = store.sql(
        f"SELECT count() AS n FROM {store.settings.database}.{table} "
        f"WHERE {column} IN {{ids:Array(String)}}",
        {"ids": rollout_ids},
    )
    return int(result["n"][0].as_py())


def _window_rollouts(store: LightningStore, directory: Path) -> set[str]:
    snapshot = store.export_window(WindowQuery(), directory)
    return set(pq.read_table(snapshot.path)["rollout_id"].to_pylist())


def test_a_forgotten_user_leaves_the_store_and_every_later_window(
    new_store: Callable[[], LightningStore], tmp_path: Path
) -> None:
    store = new_store()
    bus = InProcessBus()
    runner = EmbeddedRunner(bus, store, policy=AssemblyPolicy(grace_s=0.0))
    _send(bus, [*_of_user("a-1", "alice"), *_of_user("a-2", "alice"), *_of_user("b-1", "bob")])
    bus.append("fulmen.spans", b"a-1", b"garbage keyed by alice's rollout")
    runner.finish()
    assert _window_rollouts(store, tmp_path / "before") == {"a-1", "a-2", "b-1"}
    bob_before = {table: _rows(store, table, ["b-1"]) for table in TABLES}

    forgotten = store.forget_user("alice")

    assert forgotten.rollout_ids == ("a-1", "a-2")
    assert forgotten.rows == {
        "spans": 12,
        "rewards": 2,
        "rollouts": 4,
        "feedback": 2,
        "episodes": 2,
        "triplets": 6,
        "dead_letters": 1,
    }
    for table in TABLES:
        assert _rows(store, table, ["a-1", "a-2"]) == 0, table
    assert {table: _rows(store, table, ["b-1"]) for table in TABLES} == bob_before
    assert _window_rollouts(store, tmp_path / "after") == {"b-1"}

    # Alice's events still in flight: a replay of a forgotten rollout and a new one.
    _send(bus, [*_of_user("a-1", "alice"), *_of_user("a-3", "alice")])
    runner.finish()
    assert _rows(store, "triplets", ["a-1", "a-3"]) > 0  # they land in the tables …
    assert _window_rollouts(store, tmp_path / "late") == {"b-1"}  # … never in a window
    again = store.forget_user("alice")  # and a second forget deletes them
    assert again.rollout_ids == ("a-1", "a-2", "a-3")
    for table in TABLES:
        assert _rows(store, table, ["a-1", "a-2", "a-3"]) == 0, table
    assert store.forget_user("nobody").rollout_ids == ()
    with pytest.raises(ForgetError):
        store.forget_user("")


def test_fulmen_store_forget(tmp_path: Path) -> None:
    env = os.environ | {"FULMEN_STORE__PATH": str(tmp_path / "store")}
    populate = (
        "from fulmen.producers import FulmenSettings\n"
        "from fulmen.store import LightningStore\n"
        "from tests.integration.test_forget_user import _of_user\n"
        "store = LightningStore(FulmenSettings().store)\n"
        "store.write_events(_of_user('a-1', 'alice') + _of_user('b-1', 'bob'))\n"
        "store.close()\n"
    )
    subprocess.run([sys.executable, "-c", populate], env=env, check=True, timeout=300)
    done = subprocess.run(
        [sys.executable, "-m", "fulmen.cli", "store", "forget", "--user", "alice"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        "forgot 1 rollout(s) of the user; rows deleted: spans 6, rewards 1, rollouts 2, feedback 1"
    )
