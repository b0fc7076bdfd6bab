"""The LightningStore: columnar writes of events and episodes, trainer windows, snapshots."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from clickhouse_connect.driver.client import Client

from fulmen.schemas import Event
from fulmen.store._client import connect
from fulmen.store._conform import conform
from fulmen.store._event_rows import EVENT_TABLES, Fields, Source, events_table
from fulmen.store._forget import Forgotten, forget_user, not_forgotten
from fulmen.store._migrations import migrate
from fulmen.store._settings import StoreSettings
from fulmen.store._table_schemas import TABLES


@dataclass(frozen=True)
class WindowQuery:
    """Which triplets a trainer reads: the latest revision of each finished episode in
    [`since`, `until`), optionally of one agent, some tasks and some model versions, keeping
    only tasks with at least `min_group_size` episodes (a GRPO group).

    Unscored episodes (latest revision with no reward of the primary name) are left out,
    and do not count towards a group, unless `include_unscored`: then their triplets come
    with a null `reward`."""

    agent_name: str | None = None
    task_ids: tuple[str, ...] = ()
    model_versions: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    min_group_size: int = 1
    include_unscored: bool = False


@dataclass(frozen=True)
class Snapshot:
    """An exported window: an immutable Parquet file named by its content hash."""

    path: Path
    sha256: str
    rows: int


class LightningStore:
    """One store, embedded (chDB) or on a ClickHouse server; migrated on first use."""

    def __init__(
        self, settings: StoreSettings | None = None, *, client: Client | None = None
    ) -> None:
        self.settings = settings or StoreSettings()
        self.client = client or connect(self.settings)
        migrate(self.client, self.settings)
        self._db = self.settings.database

    def insert(self, table: str, batch: pa.Table, *, dedup_token: str | None = None) -> int:
        """Insert an Arrow batch into `table` as one write. A replay with the same
        `dedup_token` is dropped by ClickHouse. Raises `BatchRejected` (naming the column
        and row) before anything is written when the batch does not fit the table."""
        rows = conform(table, batch)
        count: int = rows.num_rows
        if count == 0:
            return 0
        settings: dict[str, Any] = {"max_insert_block_size": max(count, 1_048_576)}
        if dedup_token is not None:
            settings["insert_deduplication_token"] = dedup_token
        self.client.insert_arrow(f"{self._db}.{table}", rows, settings=settings)
        return count

    def write_events(
        self,
        events: Sequence[Event],
        *,
        dedup_token: str | None = None,
        sources: Sequence[Source] | None = None,
        fields: Sequence[Fields] | None = None,
    ) -> dict[str, int]:
        """Write decoded events to their tables (spans, rewards, rollouts, versions, feedback).
        `sources`, parallel to `events`, records the Kafka (partition, offset) of each;
        `fields`, parallel too, their fields as decoded (`Decoded.fields`), which spares
        walking the models."""
        where = sources if sources is not None else [(-1, -1)] * len(events)
        dumped = fields if fields is not None else [event.model_dump() for event in events]
        kept: dict[str, tuple[list[Fields], list[Source]]] = {
            table: ([], []) for table in EVENT_TABLES.values()
        }
        for event, values, source in zip(events, dumped, where, strict=True):
            table_fields, table_sources = kept[EVENT_TABLES[type(event)]]
            table_fields.append(values)
            table_sources.append(source)
        return {
            table: self.insert(
                table,
                events_table(table, *kept[table]),
                dedup_token=dedup_token and f"{dedup_token}/{table}",
            )
            for table in EVENT_TABLES.values()
        }

    def source_offsets(self, table: str, partitions: Sequence[int]) -> dict[int, int]:
        """The highest Kafka offset of each of `partitions` already written to `table` (a raw
        event table); partitions with nothing written are absent."""
        rows = self.client.query(
            f"SELECT source_partition, max(source_offset) FROM {self._db}.{table} "
            "WHERE source_partition IN {partitions:Array(Int32)} GROUP BY source_partition",
            parameters={"partitions": list(partitions)},
        ).result_rows
        return {int(partition): int(offset) for partition, offset in rows}

    def dead_letter_offsets(self, sources: Sequence[tuple[str, int]]) -> dict[tuple[str, int], int]:
        """The highest offset of each (topic, partition) in `sources` already in
        `dead_letters`; those with none are absent."""
        if not sources:
            return {}
        rows = self.client.query(
            f"SELECT topic, partition, max(offset) FROM {self._db}.dead_letters "
            "WHERE (topic, partition) IN {sources:Array(Tuple(String, UInt32))} "
            "GROUP BY topic, partition",
            parameters={"sources": [tuple(source) for source in sources]},
        ).result_rows
        return {(str(topic), int(partition)): int(offset) for topic, partition, offset in rows}

    def written_revisions(
        self, keys: Sequence[tuple[str, int]]
    ) -> dict[tuple[str, int], tuple[int, int]]:
        """The latest written episode revision of each (rollout id, attempt) in `keys`, with
        the number of events it was assembled from: `{key: (revision, num_events)}`. Keys
        with no episode are absent."""
        if not keys:
            return {}
        rows = self.client.query(
            "SELECT rollout_id, attempt, max(revision), argMax(num_events, revision) "
            f"FROM {self._db}.episodes WHERE rollout_id IN {{ids:Array(String)}} "
            "GROUP BY rollout_id, attempt",
            parameters={"ids": sorted({rollout_id for rollout_id, _ in keys})},
        ).result_rows
        return {
            (rollout_id, int(attempt)): (int(revision), int(events))
            for rollout_id, attempt, revision, events in rows
        }

    def triplet_revisions(self, keys: Sequence[tuple[str, int, int]]) -> set[tuple[str, int, int]]:
        """Which (rollout id, attempt, revision) in `keys` have triplets written. A batch of
        triplets is one insert, so an episode revision's triplets are all there or none."""
        if not keys:
            return set()
        rows = self.client.query(
            f"SELECT DISTINCT rollout_id, attempt, revision FROM {self._db}.triplets "
            "WHERE rollout_id IN {ids:Array(String)}",
            parameters={"ids": sorted({rollout_id for rollout_id, _, _ in keys})},
        ).result_rows
        found = {(rid, int(attempt), int(revision)) for rid, attempt, revision in rows}
        return found & set(keys)

    def window(self, query: WindowQuery) -> pa.Table:
        """The triplets of `query`, ordered by agent, task, rollout, attempt and step; a
        triplet's `reward` is null only when `query.include_unscored` let its unscored
        episode in. Rollouts of forgotten users (`forget_user`) are never in a window, also
        those whose events arrived after the forget."""
        where, parameters = _episode_filter(query)
        where = f"{where} AND {not_forgotten(self._db)}"
        sql = f"""
            WITH latest AS (
                SELECT rollout_id, attempt, max(revision) AS last_revision,
                       any(task_id) AS episode_task
                FROM {self._db}.episodes WHERE {where}
                GROUP BY rollout_id, attempt
                HAVING {"1" if query.include_unscored else "argMax(scored, revision)"}
            ), groups AS (
                SELECT episode_task FROM latest GROUP BY episode_task
                HAVING count() >= {{min_group:UInt32}}
            )
            SELECT * FROM {self._db}.triplets
            WHERE {where}
              AND (rollout_id, attempt, revision) IN
                  (SELECT rollout_id, attempt, last_revision FROM latest)
              AND task_id IN (SELECT episode_task FROM groups)
            ORDER BY agent_name, task_id, rollout_id, attempt, step
        """
        parameters["min_group"] = query.min_group_size
        table: pa.Table = self.client.query_arrow(sql, parameters=parameters)
        return table

    def export_window(self, query: WindowQuery, directory: Path) -> Snapshot:
        """Write the window as `window-<sha256>.parquet` under `directory` (read-only once
        written; an identical window maps to the same file) and return its lineage."""
        return _snapshot(conform("triplets", self.window(query)), directory, "window")

    def episode_feedback(self, episodes: Sequence[tuple[str, int]]) -> pa.Table:
        """The feedback on `episodes` ((rollout id, attempt) pairs), each event once, in
        (rollout, attempt, emit time, event id) order; none of forgotten users' rollouts."""
        columns = [name for name in TABLES["feedback"].names if not name.startswith("source_")]
        if not episodes:
            return TABLES["feedback"].empty_table().select(columns)
        table: pa.Table = self.client.query_arrow(
            f"SELECT {', '.join(columns)} FROM {self._db}.feedback "
            "WHERE (rollout_id, attempt) IN {episodes:Array(Tuple(String, UInt32))} "
            f"AND {not_forgotten(self._db)} "
            "ORDER BY rollout_id, attempt, emitted_at, event_id LIMIT 1 BY event_id",
            parameters={"episodes": [tuple(key) for key in sorted(set(episodes))]},
        )
        return table

    def export_feedback(self, episodes: Sequence[tuple[str, int]], directory: Path) -> Snapshot:
        """Write the feedback on `episodes` as `feedback-<sha256>.parquet` under `directory`
        (read-only once written), as `export_window` writes a window."""
        return _snapshot(self.episode_feedback(episodes), directory, "feedback")

    def forget_user(self, user_id: str) -> Forgotten:
        """Delete every row of the rollouts `user_id` (the `user_id` label of their lifecycle
        events, `fulmen.rollout(user_id=…)`) acted for, and keep them out of every window
        exported afterwards (see `fulmen.store._forget.forget_user`; docs/store.md)."""
        return forget_user(self.client, self._db, user_id)

    def sql(self, statement: str, parameters: dict[str, Any] | None = None) -> pa.Table:
        """Run a query and return its result as Arrow."""
        table: pa.Table = self.client.query_arrow(statement, parameters=parameters or {})
        return table

    def close(self) -> None:
        self.client.close()


def _snapshot(table: pa.Table, directory: Path, prefix: str) -> Snapshot:
    digest = content_hash(table)
    path = directory / f"{prefix}-{digest[:32]}.parquet"
    if not path.exists():
        directory.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        pq.write_table(table, partial, compression="zstd")
        partial.chmod(0o444)
        partial.replace(path)
    return Snapshot(path=path, sha256=digest, rows=table.num_rows)


def content_hash(table: pa.Table) -> str:
    """SHA-256 of the table's rows and column types, independent of file format and writer."""
    digest = hashlib.sha256()
    sink = pa.BufferOutputStream()
    schema = pa.schema([field.remove_metadata() for field in table.schema])
    with pa.ipc.new_stream(sink, schema) as writer:
        writer.write_table(table.replace_schema_metadata(None).cast(schema))
    digest.update(sink.getvalue().to_pybytes())
    return digest.hexdigest()


def _episode_filter(query: WindowQuery) -> tuple[str, dict[str, Any]]:
    clauses = ["1"]
    parameters: dict[str, Any] = {}
    if query.agent_name is not None:
        clauses.append("agent_name = {agent:String}")
        parameters["agent"] = query.agent_name
    if query.task_ids:
        clauses.append("task_id IN {tasks:Array(String)}")
        parameters["tasks"] = list(query.task_ids)
    if query.model_versions:
        clauses.append("model_version IN {versions:Array(String)}")
        parameters["versions"] = list(query.model_versions)
    if query.since is not None:
        clauses.append("finished_at >= {since:DateTime64(9, 'UTC')}")
        parameters["since"] = query.since
    if query.until is not None:
        clauses.append("finished_at < {until:DateTime64(9, 'UTC')}")
        parameters["until"] = query.until
    return " AND ".join(clauses), parameters
