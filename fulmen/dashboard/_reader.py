"""The dashboard's one way into the store: read-only SQL, one query at a time."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any, Protocol

import pyarrow as pa
from clickhouse_connect.driver.client import Client


class SqlSource(Protocol):
    """Anything that runs a SELECT and returns Arrow: a `LightningStore`, or a client."""

    def sql(self, statement: str, parameters: dict[str, Any] | None = None) -> pa.Table: ...


class ClientSource:
    """A clickhouse-connect client as a `SqlSource`, without migrating anything: how the
    dashboard reads a ClickHouse server (or `fulmen store serve`) as a read-only user."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def sql(self, statement: str, parameters: dict[str, Any] | None = None) -> pa.Table:
        table: pa.Table = self._client.query_arrow(statement, parameters=parameters or {})
        return table


class StoreReader:
    """Runs the dashboard's queries against `database`.

    Statements name tables as `$db.table`; values go in as ClickHouse query parameters
    (`{name:Type}`), never into the SQL text. Queries are serialized: chDB and a
    clickhouse-connect HTTP session each refuse concurrent queries, and page requests are
    served from a thread pool. No query changes settings, so read-only users (ClickHouse's
    `readonly=1`) can run all of them.
    """

    def __init__(self, source: SqlSource, database: str) -> None:
        self._source = source
        self._database = database
        self._lock = threading.Lock()

    def rows(
        self, statement: str, parameters: Mapping[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """The result of `statement` as one dict per row (column name → Python value)."""
        sql = statement.replace("$db.", f"{self._database}.")
        with self._lock:
            table = self._source.sql(sql, dict(parameters or {}))
        rows: list[dict[str, Any]] = table.to_pylist()
        return rows
