"""Processes that migrate one store at the same time take turns: a worker group starting
together on a fresh store leaves it whole (every migration once, every insert accepted)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from fulmen.schemas import Span
from fulmen.store import LightningStore, StoreServer, StoreSettings, StoreUser, migrate
from fulmen.store import _migrations as migration_module
from fulmen.store._event_rows import events_table
from fulmen.store._migrations import migrations
from tests.support.events import all_events

pytestmark = pytest.mark.integration

MIGRATORS = 6


@pytest.fixture(scope="module")
def server(chdb_path: Path) -> Iterator[StoreServer]:
    with StoreServer(chdb_path, users={"writer": StoreUser(password="w")}) as running:
        yield running


def _settings(server: StoreServer, database: str) -> StoreSettings:
    return StoreSettings(url=server.url, username="writer", password="w", database=database)


def _tables(store: LightningStore) -> set[str]:
    db = store.settings.database
    rows = store.sql(f"SELECT name FROM system.tables WHERE database = '{db}'")
    return set(rows["name"].to_pylist())


def _migrated_then_locked(server: StoreServer, database: str) -> LightningStore:
    """A store whose ledger is gone (every migration pending again) and whose migration
    lock another process holds."""
    store = LightningStore(_settings(server, database))
    store.client.command(f"DROP TABLE {database}.schema_migrations")
    store.client.command(
        f"CREATE TABLE {database}.schema_migrations_lock (unused UInt8) ENGINE = Memory"
    )
    return store


@pytest.mark.parametrize("round_", range(3))
def test_migrators_starting_together_leave_the_store_whole(
    server: StoreServer, round_: int
) -> None:
    database = f"m_{uuid.uuid4().hex[:10]}"
    start = threading.Barrier(MIGRATORS)
    stores: list[LightningStore] = []
    errors: list[BaseException] = []

    def open_store() -> None:
        start.wait()
        try:
            stores.append(LightningStore(_settings(server, database)))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(MIGRATORS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    store = stores[0]
    ledger = store.sql(f"SELECT version FROM {database}.schema_migrations ORDER BY version")
    assert ledger["version"].to_pylist() == [m.version for m in migrations()]
    tables = _tables(store)
    assert "tool_calls_hourly_mv" not in tables  # created by 0003, dropped by 0008
    assert "schema_migrations_lock" not in tables
    spans = [event.model_dump() for event in all_events() if isinstance(event, Span)]
    assert any(span["tool"] for span in spans)  # what the dropped view would have read
    assert store.insert("spans", events_table("spans", spans)) == len(spans)


def test_a_held_lock_is_waited_for(server: StoreServer) -> None:
    database = f"m_{uuid.uuid4().hex[:10]}"
    store = _migrated_then_locked(server, database)
    done = threading.Event()
    thread = threading.Thread(
        target=lambda: (migrate(store.client, store.settings), done.set()), daemon=True
    )
    thread.start()
    assert not done.wait(1.0)  # nothing is applied while another migrator holds the lock
    assert store.client.command(f"SELECT count() FROM {database}.schema_migrations") == 0
    store.client.command(f"DROP TABLE {database}.schema_migrations_lock")
    assert done.wait(60)
    assert store.client.command(f"SELECT count() FROM {database}.schema_migrations") == len(
        migrations()
    )


def test_a_stale_lock_is_broken(server: StoreServer, monkeypatch: pytest.MonkeyPatch) -> None:
    database = f"m_{uuid.uuid4().hex[:10]}"
    store = _migrated_then_locked(server, database)
    time.sleep(1.1)  # system.tables times have whole seconds
    monkeypatch.setattr(migration_module, "LOCK_STALE_S", 0.5)
    assert len(migrate(store.client, store.settings)) == len(migrations())
    assert "schema_migrations_lock" not in _tables(store)
