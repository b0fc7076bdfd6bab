"""Versioned DDL from `schemas/clickhouse/NNNN_name.sql`, applied once each, in order.

Each migration's statements are idempotent (`IF NOT EXISTS`), so a migration that failed
half-way is re-run whole. An applied migration whose file changed is an error: the
schema history is append-only, like the Avro contracts.

Processes that start together (a worker group, a trainer, the dashboard) migrate one at a
time: ClickHouse DDL is atomic per statement only, and two migrators interleaving a
migration that creates an object with a later one that drops it left a materialized view
without its target table, which refused every insert into `spans`. The lock is a table:
`CREATE TABLE` without `IF NOT EXISTS` succeeds for one process and fails for the others.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.resources import files
from string import Template

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError

from fulmen.errors import FulmenError
from fulmen.store._settings import StoreSettings

_LEDGER = "schema_migrations"
_LOCK = "schema_migrations_lock"
LOCK_STALE_S = 300.0
"""A lock held this long is taken to be a migrator's that died, and is broken."""
_LOCK_POLL_S = 0.2
log = logging.getLogger(__name__)
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class MigrationError(FulmenError):
    """The store's schema history does not match this build's migrations."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def migrations() -> list[Migration]:
    """This build's migrations, in version order."""
    found = []
    for entry in files("fulmen.schemas").joinpath("clickhouse").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text("utf-8")))
    return sorted(found, key=lambda m: m.version)


def migrate(client: Client, settings: StoreSettings) -> list[Migration]:
    """Apply the migrations the store has not seen; returns those applied now. Waits while
    another process migrates the same database."""
    database = settings.database
    client.command(f"CREATE DATABASE IF NOT EXISTS {database}")
    client.command(
        f"CREATE TABLE IF NOT EXISTS {database}.{_LEDGER} "
        "(version UInt32, name String, checksum String, applied_at DateTime64(3, 'UTC') "
        "DEFAULT now64(3)) ENGINE = MergeTree ORDER BY version"
    )
    if not _pending(client, database):
        return []
    with _migration_lock(client, database):
        pending = _pending(client, database)  # what another migrator left, if anything
        for migration in pending:
            for statement in render(migration, settings):
                client.command(statement)
            client.insert(
                f"{database}.{_LEDGER}",
                [[migration.version, migration.name, migration.checksum]],
                column_names=["version", "name", "checksum"],
            )
    return pending


def _pending(client: Client, database: str) -> list[Migration]:
    """This build's migrations the ledger lacks; `MigrationError` when an applied one's
    file changed since."""
    applied = {
        int(version): checksum
        for version, checksum in client.query(
            f"SELECT version, checksum FROM {database}.{_LEDGER}"
        ).result_rows
    }
    pending = []
    for migration in migrations():
        if migration.version not in applied:
            pending.append(migration)
        elif applied[migration.version] != migration.checksum:
            raise MigrationError(
                f"migration {migration.version:04d}_{migration.name} changed after it was "
                "applied; add a new migration instead"
            )
    return pending


@contextlib.contextmanager
def _migration_lock(client: Client, database: str) -> Iterator[None]:
    """Hold `database`'s migration lock; a lock older than `LOCK_STALE_S` is broken. The
    lock table's one column is never written (a table needs one): how long it has been held
    is its creation time in `system.tables`."""
    lock = f"{database}.{_LOCK}"
    while True:
        try:
            client.command(f"CREATE TABLE {lock} (unused UInt8) ENGINE = Memory")
            break
        except DatabaseError as exc:
            if "TABLE_ALREADY_EXISTS" not in str(exc):
                raise
        held_s = client.command(
            "SELECT now() - metadata_modification_time FROM system.tables "
            f"WHERE database = '{database}' AND name = '{_LOCK}'"
        )
        if isinstance(held_s, int) and held_s > LOCK_STALE_S:
            log.warning("breaking %s's migration lock, held for %d s", database, held_s)
            client.command(f"DROP TABLE IF EXISTS {lock}")
            continue
        time.sleep(_LOCK_POLL_S)
    try:
        yield
    finally:
        client.command(f"DROP TABLE IF EXISTS {lock}")


def render(migration: Migration, settings: StoreSettings) -> list[str]:
    """The statements of `migration` for this store (engine, TTLs, settings filled in)."""
    ttl = settings.ttl
    sql = _strip_comments(migration.sql)
    statements = [s.strip() for s in sql.split(";") if s.strip()]
    rendered = []
    for statement in statements:
        table = re.search(r"\$database\.(\w+)", statement)
        table_name = table[1] if table else "unknown"
        rendered.append(
            Template(statement).substitute(
                database=settings.database,
                engine=_engine(settings, table_name),
                settings=_table_settings(settings),
                ttl_spans_days=ttl.spans_days,
                ttl_rewards_days=ttl.rewards_days,
                ttl_rollouts_days=ttl.rollouts_days,
                ttl_dead_letters_days=ttl.dead_letters_days,
                ttl_episodes_days=ttl.episodes_days,
                ttl_triplets_days=ttl.triplets_days,
                ttl_feedback_days=ttl.feedback_days,
            )
        )
    return rendered


def _engine(settings: StoreSettings, table: str) -> str:
    if settings.replicated:
        path = f"/clickhouse/tables/{{shard}}/{settings.database}/{table}"
        return f"ReplicatedMergeTree('{path}', '{{replica}}')"
    return "MergeTree"


def _table_settings(settings: StoreSettings) -> str:
    # Inserts of ~10k wide rows make parts of a few MB to a few hundred MB; as Compact parts
    # (one file) they are written 3x faster than Wide ones (two files per column). Merges
    # turn them into Wide parts once they pass the threshold.
    compact = "min_bytes_for_wide_part = 268435456"
    if settings.replicated:
        return f"replicated_deduplication_window = {settings.dedup_window_blocks}, {compact}"
    return f"non_replicated_deduplication_window = {settings.dedup_window_blocks}, {compact}"


def _strip_comments(sql: str) -> str:
    return "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))
