"""The LightningStore on the real ClickHouse engine (chDB): migrations, writes, dedup,
revisions, windows, snapshots and rejected batches."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pyarrow as pa
import pytest

from fulmen.schemas import ReleaseDecision, Reward, RolloutEvent, Span
from fulmen.store import (
    BatchRejected,
    LightningStore,
    MigrationError,
    StoreSettings,
    WindowQuery,
    connect,
)
from fulmen.store import _migrations as migration_module
from fulmen.store._migrations import Migration, migrate, migrations, render
from fulmen.store._table_schemas import TABLES
from tests.support.events import all_events, llm_span

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def store(new_store: Callable[[], LightningStore]) -> LightningStore:
    return new_store()


def _count(store: LightningStore, table: str, where: str = "1") -> int:
    db = store.settings.database
    return int(store.sql(f"SELECT count() AS n FROM {db}.{table} WHERE {where}")["n"][0].as_py())


def test_migrations_create_every_table_and_rerun_as_no_ops(store: LightningStore) -> None:
    tables = set(
        store.sql(
            "SELECT name FROM system.tables WHERE database = {db:String}",
            {"db": store.settings.database},
        )["name"].to_pylist()
    )
    assert tables >= set(TABLES) | {"schema_migrations"}
    assert migrate(store.client, store.settings) == []
    assert _count(store, "schema_migrations") == len(migrations())


def test_arrow_schemas_match_the_ddl(store: LightningStore) -> None:
    for table, schema in TABLES.items():
        described = store.sql(f"DESCRIBE TABLE {store.settings.database}.{table}").to_pylist()
        stored = [(row["name"], row["type"]) for row in described if row["default_type"] != "ALIAS"]
        assert [name for name, _ in stored] == schema.names, table
        for (name, kind), field in zip(stored, schema, strict=True):
            assert ("Nullable" in kind) == field.nullable, f"{table}.{name}: {kind}"


def test_a_changed_migration_is_refused(new_store: Callable[[], LightningStore]) -> None:
    store = new_store()
    store.client.command(
        f"ALTER TABLE {store.settings.database}.schema_migrations UPDATE checksum = 'edited' "
        "WHERE version = {v:UInt32}",
        parameters={"v": migrations()[0].version},
        settings={"mutations_sync": 2},
    )
    with pytest.raises(MigrationError, match="changed after it was applied"):
        migrate(store.client, store.settings)


def test_a_store_of_the_migrations_before_unscored_episodes_upgrades(
    chdb_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store made by migrations 1-6, holding episodes and triplets of the old shape
    (reward Float64, no `scored`), upgrades in place: old rows read scored with their reward,
    and new rows may be unscored."""
    settings = StoreSettings(path=chdb_path, database=f"t_{uuid.uuid4().hex[:12]}")
    current = migrations()
    old = [m for m in current if m.version <= 6]
    assert [m.version for m in current if m.version > 6][:1] == [7]
    client = connect(settings)
    monkeypatch.setattr(migration_module, "migrations", lambda: old)
    migrate(client, settings)
    monkeypatch.undo()
    db = settings.database
    old_episode = {k: v for k, v in _episode("old-1", "task-a", 0, 0.0).items() if k != "scored"}
    client.insert(f"{db}.episodes", [list(old_episode.values())], column_names=list(old_episode))
    old_triplet = _triplet("old-1", "task-a", 0, 0.0)
    client.insert(f"{db}.triplets", [list(old_triplet.values())], column_names=list(old_triplet))

    store = LightningStore(settings, client=client)  # migrates on first use: 0007 and on
    try:
        assert _count(store, "schema_migrations") == len(current)
        described = {
            (row["name"], row["type"])
            for table in ("episodes", "triplets")
            for row in store.sql(f"DESCRIBE TABLE {db}.{table}").to_pylist()
        }
        assert {("scored", "Bool"), ("reward", "Nullable(Float64)")} <= described
        [row] = store.sql(f"SELECT scored, reward FROM {db}.episodes").to_pylist()
        assert row == {"scored": True, "reward": 0.0}  # written before: taken as scored
        store.insert("episodes", _rows("episodes", [_episode("new-1", "task-a", 0, None)]))
        store.insert("triplets", _rows("triplets", [_triplet("new-1", "task-a", 0, None)]))
        window = store.window(WindowQuery(agent_name="calc", include_unscored=True))
        assert window.select(["rollout_id", "reward"]).to_pylist() == [
            {"rollout_id": "new-1", "reward": None},
            {"rollout_id": "old-1", "reward": 0.0},
        ]
        assert store.window(WindowQuery(agent_name="calc"))["rollout_id"].to_pylist() == ["old-1"]
        assert migrate(store.client, settings) == []  # and a rerun changes nothing
    finally:
        store.close()


def test_a_store_of_the_migrations_before_the_episode_views_upgrades(
    chdb_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store made by migrations 1-7, with episodes and tool spans in it, upgrades in
    place: the views it had answer over the rows written before, the superseded ones are
    gone, and a rerun changes nothing."""
    settings = StoreSettings(path=chdb_path, database=f"t_{uuid.uuid4().hex[:12]}")
    current = migrations()
    old = [m for m in current if m.version <= 7]
    assert [m.version for m in current if m.version > 7][:1] == [8]
    client = connect(settings)
    monkeypatch.setattr(migration_module, "migrations", lambda: old)
    before = LightningStore(settings, client=client)
    monkeypatch.undo()
    before.insert(
        "episodes",
        _rows("episodes", [_episode("u-1", "task-a", 0, 0.0), _episode("u-1", "task-a", 1, 1.0)]),
    )
    # a tool call among them; versions and feedback have columns and a table of later
    # migrations (0010)
    spans = [e for e in all_events("u-2") if isinstance(e, (Span, Reward, RolloutEvent))]
    before.write_events(spans)
    db = settings.database

    store = LightningStore(settings, client=client)  # migrates on first use: 0008
    try:
        assert _count(store, "schema_migrations") == len(current)
        names = set(
            store.sql("SELECT name FROM system.tables WHERE database = {db:String}", {"db": db})[
                "name"
            ].to_pylist()
        )
        assert {"latest_episodes", "completion_by_agent_task", "dead_letters_hourly"} <= names
        assert not {"episode_reward_by_version_hourly", "tool_calls_hourly"} & names
        [rewards] = store.sql(
            f"SELECT episode_count, scored_count, mean_reward FROM {db}.reward_by_version_hourly"
        ).to_pylist()
        assert rewards == {"episode_count": 1, "scored_count": 1, "mean_reward": 1.0}
        tools = store.sql(f"SELECT tool_name, call_count FROM {db}.tool_error_rate").to_pylist()
        assert tools == [{"tool_name": "calculator", "call_count": 1}]
        assert migrate(store.client, settings) == []
    finally:
        store.close()


def test_replicated_engines_are_selectable() -> None:
    statements = render(migrations()[0], StoreSettings(replicated=True))
    assert (
        "ReplicatedMergeTree('/clickhouse/tables/{shard}/fulmen/spans', '{replica}')"
        in statements[0]
    )
    assert "replicated_deduplication_window" in statements[0]
    assert isinstance(migrations()[0], Migration)


def test_events_round_trip_and_a_replayed_batch_is_dropped(store: LightningStore) -> None:
    events = all_events("replayed-rollout")
    written = store.write_events(events, dedup_token="topic/0/100-105")
    assert written == {"spans": 2, "rewards": 1, "rollouts": 2, "versions": 1, "feedback": 1,
                       "release_decisions": 1, "serving_acks": 1}  # fmt: skip
    store.write_events(events, dedup_token="topic/0/100-105")
    assert _count(store, "spans", "rollout_id = 'replayed-rollout'") == 2
    row = store.sql(
        "SELECT llm_response_token_ids AS ids, llm_response_logprobs AS lp, attr_ints AS ints "
        f"FROM {store.settings.database}.spans "
        "WHERE rollout_id = 'replayed-rollout' AND llm_request_model != ''"
    ).to_pylist()[0]
    assert row["ids"] == [19, 20, 2]
    assert row["lp"] == [-0.25, -1.5, -0.125]
    assert dict(row["ints"]) == {"server.port": 8000}
    (decision,) = [e for e in events if isinstance(e, ReleaseDecision)]
    kept = store.sql(
        f"SELECT action, to_version, arms FROM {store.settings.database}.release_decisions "
        "WHERE event_id = {id:String}",
        {"id": decision.meta.event_id},
    ).to_pylist()
    assert kept == [{"action": "rollback", "to_version": "calc-v1",
                     "arms": [arm.model_dump() for arm in decision.arms]}]  # fmt: skip


def _episode(
    rollout: str, task: str, revision: int, reward: float | None, model: str = "m1"
) -> dict[str, object]:
    now = time.time_ns()
    return {
        "rollout_id": rollout, "attempt": 1, "revision": revision, "agent_name": "calc",
        "task_id": task, "model_version": model, "resources_version": "r1", "status": "succeeded",
        "scored": reward is not None, "reward": reward,
        "rewards": {} if reward is None else {"reward": reward}, "credit_assignment": "final",
        "started_at": now, "finished_at": now, "assembled_at": now // 1_000_000,
        "num_spans": 3, "num_llm_calls": 1, "num_tool_calls": 1, "num_tool_errors": 0,
        "input": None, "error": None, "num_events": 5,
    }  # fmt: skip


def _triplet(
    rollout: str, task: str, revision: int, reward: float | None, model: str = "m1"
) -> dict[str, object]:
    return {
        "rollout_id": rollout, "attempt": 1, "revision": revision, "step": 0, "span_id": "a" * 16,
        "agent_name": "calc", "task_id": task, "model_version": model, "resources_version": "r1",
        "finished_at": time.time_ns(), "request_model": "calc", "prompt": "2+2?", "response": "4",
        "prompt_token_ids": [1, 2, 3], "response_token_ids": [4], "response_logprobs": [-0.5],
        "reward": reward, "advantage": None,
    }  # fmt: skip


def _rows(table: str, rows: list[dict[str, object]]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=TABLES[table])


@pytest.fixture(scope="module")
def episodes(store: LightningStore) -> None:
    episodes = [
        _episode("w-1", "task-a", 0, 0.0),
        _episode("w-1", "task-a", 1, 1.0),  # a late reward revised it
        _episode("w-2", "task-a", 0, 0.5),
        _episode("w-3", "task-b", 0, 1.0),
        _episode("w-4", "task-a", 0, 0.2, model="m0"),
        _episode("w-5", "task-a", 0, None),  # no reward reached it: unscored
        _episode("w-6", "task-c", 0, None, model="m2"),
        _episode("w-6", "task-c", 1, 0.0, model="m2"),  # a late reward of 0 scored it
    ]
    triplets = [
        _triplet("w-1", "task-a", 0, 0.0),
        _triplet("w-1", "task-a", 1, 1.0),
        _triplet("w-2", "task-a", 0, 0.5),
        _triplet("w-3", "task-b", 0, 1.0),
        _triplet("w-4", "task-a", 0, 0.2, model="m0"),
        _triplet("w-5", "task-a", 0, None),
        _triplet("w-6", "task-c", 0, None, model="m2"),
        _triplet("w-6", "task-c", 1, 0.0, model="m2"),
    ]
    store.insert("episodes", _rows("episodes", episodes), dedup_token="episodes-1")
    store.insert("triplets", _rows("triplets", triplets), dedup_token="triplets-1")


@pytest.mark.usefixtures("episodes")
def test_window_takes_the_latest_revision_and_whole_groups(store: LightningStore) -> None:
    window = store.window(WindowQuery(agent_name="calc", model_versions=("m1",), min_group_size=2))
    assert window.select(["rollout_id", "revision", "reward"]).to_pylist() == [
        {"rollout_id": "w-1", "revision": 1, "reward": 1.0},
        {"rollout_id": "w-2", "revision": 0, "reward": 0.5},
    ]
    everything = store.window(WindowQuery(agent_name="calc"))
    assert sorted(everything["rollout_id"].to_pylist()) == ["w-1", "w-2", "w-3", "w-4", "w-6"]


@pytest.mark.usefixtures("episodes")
def test_window_leaves_unscored_episodes_out_unless_asked(store: LightningStore) -> None:
    m1 = WindowQuery(agent_name="calc", model_versions=("m1",), task_ids=("task-a",))
    default = store.window(m1)
    assert sorted(default["rollout_id"].to_pylist()) == ["w-1", "w-2"]
    assert default["reward"].null_count == 0
    # an unscored episode counts towards no group either
    assert store.window(replace(m1, min_group_size=3)).num_rows == 0
    included = store.window(replace(m1, min_group_size=3, include_unscored=True))
    assert included.select(["rollout_id", "reward"]).to_pylist() == [
        {"rollout_id": "w-1", "reward": 1.0},
        {"rollout_id": "w-2", "reward": 0.5},
        {"rollout_id": "w-5", "reward": None},
    ]
    late = store.window(WindowQuery(agent_name="calc", model_versions=("m2",)))
    assert late.select(["rollout_id", "revision", "reward"]).to_pylist() == [
        {"rollout_id": "w-6", "revision": 1, "reward": 0.0}  # scored zero: a real 0
    ]


@pytest.mark.usefixtures("episodes")
def test_analyst_views_count_unscored_episodes_apart(store: LightningStore) -> None:
    db = store.settings.database
    [funnel] = store.sql(
        f"SELECT sum(scored_count) AS scored, sum(unscored_count) AS unscored "
        f"FROM {db}.episode_funnel WHERE agent_name = 'calc'"
    ).to_pylist()
    assert funnel == {"scored": 5, "unscored": 1}  # w-1…w-4, w-6 scored; w-5 not
    rows = store.sql(
        "SELECT model_version, scored_count, unscored_count, mean_reward "
        f"FROM {db}.reward_by_version_hourly WHERE agent_name = 'calc' "
        "ORDER BY model_version"
    ).to_pylist()
    assert [(r["model_version"], r["scored_count"], r["unscored_count"]) for r in rows] == [
        ("m0", 1, 0),
        ("m1", 3, 1),
        ("m2", 1, 0),
    ]
    assert rows[1]["mean_reward"] == pytest.approx((1.0 + 0.5 + 1.0) / 3)  # not / 4


@pytest.mark.usefixtures("episodes")
def test_window_snapshots_are_immutable_and_hash_stably(
    store: LightningStore, tmp_path: Path
) -> None:
    query = WindowQuery(agent_name="calc", min_group_size=1)
    first = store.export_window(query, tmp_path / "a")
    second = store.export_window(query, tmp_path / "b")
    assert first.sha256 == second.sha256
    assert first.rows == second.rows == 5
    assert first.path.read_bytes() == second.path.read_bytes()
    assert not first.path.stat().st_mode & 0o222
    assert pa.parquet.read_table(first.path).num_rows == 5  # type: ignore[attr-defined]


def _with_column(table: pa.Table, name: str, values: pa.Array) -> pa.Table:
    return table.set_column(table.schema.get_field_index(name), name, values)


_GOOD = 5


@pytest.mark.parametrize(
    ("change", "column", "row"),
    [
        (lambda t: t.drop_columns(["sequence"]), "sequence", None),
        (lambda t: t.append_column("surprise", pa.array([1] * _GOOD)), "surprise", None),
        (
            lambda t: _with_column(t, "agent_name", pa.array(["a", "b", None, "d", "e"])),
            "agent_name",
            2,
        ),
        (lambda t: _with_column(t, "attempt", pa.array([1, 1, 1, -1, 1])), "attempt", 3),
    ],
)
def test_a_bad_batch_names_column_and_row_and_writes_nothing(
    store: LightningStore, change, column: str, row: int | None
) -> None:
    from fulmen.store._event_rows import events_table

    good = events_table("spans", [llm_span(f"bad-{i}", i).model_dump() for i in range(_GOOD)])
    before = _count(store, "spans")
    with pytest.raises(BatchRejected) as rejected:
        store.insert("spans", change(good))
    assert (rejected.value.column, rejected.value.row) == (column, row)
    assert _count(store, "spans") == before


def test_the_scheduler_counts_scored_episodes_only(
    new_store: Callable[[], LightningStore],
) -> None:
    from datetime import UTC, datetime, timedelta

    from fulmen.trainers.scheduler._ledger import WindowLedger
    from tests.support.episodes import insert_episodes

    store = new_store()
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)  # within TTLs
    insert_episodes(store, "calc", [start + timedelta(seconds=i) for i in range(3)], reward=0.5)
    insert_episodes(
        store, "calc", [start + timedelta(seconds=10 + i) for i in range(4)], reward=None
    )
    points = WindowLedger(store).episodes(
        "calc", since=None, horizon=start + timedelta(minutes=1), limit=100
    )
    assert [p.reward for p in points] == [0.5, 0.5, 0.5]  # four unscored: no zeros, no count
