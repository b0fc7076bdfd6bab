"""The chDB engine behind the store server, and ClickHouse's errors as a server answers them.

Every query runs in a fresh chDB connection on the shared engine, so a query's settings,
``readonly`` level and current database never leak into another query. One lock
serializes all engine work; an anchor connection keeps the engine open between queries.

Engine failures surface as :class:`ClickHouseError`: the engine's code, error name and
message, the HTTP status a ClickHouse server answers for that name, and the body
``Code: <n>. DB::Exception: <message> (version …)``.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from fulmen.store._client import open_embedded

_ERROR = re.compile(r"^Code: (\d+)\. (?:DB::Exception: )?(.*)$", re.DOTALL)
_ERROR_NAME = re.compile(r"\(([A-Z][A-Z0-9_]+)\)\s*$")

# The HTTP status a ClickHouse server answers for an error, by the error's name
# (src/Server/HTTP/exceptionCodeToHTTPStatus.cpp); anything else is 500.
_HTTP_STATUS_BY_ERROR: dict[str, int] = {
    "REQUIRED_PASSWORD": 401,
    **dict.fromkeys(
        (
            "UNKNOWN_USER",
            "WRONG_PASSWORD",
            "AUTHENTICATION_FAILED",
            "SET_NON_GRANTED_ROLE",
            "ACCESS_DENIED",
        ),
        403,
    ),
    **dict.fromkeys(
        (
            "BAD_ARGUMENTS",
            "CANNOT_COMPILE_REGEXP",
            "CANNOT_PARSE_TEXT",
            "CANNOT_PARSE_ESCAPE_SEQUENCE",
            "CANNOT_PARSE_QUOTED_STRING",
            "CANNOT_PARSE_DATE",
            "CANNOT_PARSE_DATETIME",
            "CANNOT_PARSE_NUMBER",
            "CANNOT_PARSE_DOMAIN_VALUE_FROM_STRING",
            "CANNOT_PARSE_IPV4",
            "CANNOT_PARSE_IPV6",
            "CANNOT_PARSE_INPUT_ASSERTION_FAILED",
            "CANNOT_PARSE_UUID",
            "DUPLICATE_COLUMN",
            "ILLEGAL_COLUMN",
            "UNKNOWN_ELEMENT_IN_AST",
            "UNKNOWN_TYPE_OF_AST_NODE",
            "THERE_IS_NO_COLUMN",
            "TOO_DEEP_AST",
            "TOO_BIG_AST",
            "UNEXPECTED_AST_STRUCTURE",
            "SYNTAX_ERROR",
            "INCORRECT_DATA",
            "TYPE_MISMATCH",
            "VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE",
        ),
        400,
    ),
    **dict.fromkeys(
        (
            "UNKNOWN_TABLE",
            "UNKNOWN_FUNCTION",
            "UNKNOWN_IDENTIFIER",
            "UNKNOWN_TYPE",
            "UNKNOWN_STORAGE",
            "UNKNOWN_DATABASE",
            "UNKNOWN_SETTING",
            "UNKNOWN_DIRECTION_OF_SORTING",
            "UNKNOWN_AGGREGATE_FUNCTION",
            "UNKNOWN_FORMAT",
            "UNKNOWN_DATABASE_ENGINE",
            "UNKNOWN_TYPE_OF_QUERY",
            "UNKNOWN_ROLE",
        ),
        404,
    ),
    "QUERY_IS_TOO_LARGE": 413,
    "NOT_IMPLEMENTED": 501,
    "SOCKET_TIMEOUT": 503,
    "CANNOT_OPEN_FILE": 503,
    "CANNOT_SCHEDULE_TASK": 503,
    "HTTP_LENGTH_REQUIRED": 411,
    "TIMEOUT_EXCEEDED": 408,
    "UNSUPPORTED_MEDIA_TYPE": 415,
}

ReadonlyLevel = Literal[0, 1, 2]
"""ClickHouse's ``readonly`` setting: 0 writes, 1 reads only, 2 reads and changes settings."""


class ClickHouseError(Exception):
    """An error to answer the way a ClickHouse server would: code, name and message."""

    def __init__(self, code: int, name: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.name = name
        self.message = message

    @classmethod
    def from_engine(cls, exc: BaseException) -> ClickHouseError:
        """Parse chDB's ``Code: <n>. DB::Exception: <message> (<NAME>)`` text."""
        text = str(exc).strip()
        match = _ERROR.match(text)
        if match is None:
            return cls(1001, "STD_EXCEPTION", text or type(exc).__name__)
        name = _ERROR_NAME.search(match.group(2))
        return cls(int(match.group(1)), name.group(1) if name else "", match.group(2))

    @property
    def http_status(self) -> int:
        """The status a ClickHouse server answers for this error."""
        return _HTTP_STATUS_BY_ERROR.get(self.name, 500)

    def body(self, version: str) -> bytes:
        """The response body, with the server-version trailer clients strip."""
        message = self.message
        if self.name and not message.rstrip().endswith(f"({self.name})"):
            message = f"{message} ({self.name})"
        return f"Code: {self.code}. DB::Exception: {message} (version {version})\n".encode()


# --- quoting ---------------------------------------------------------------------------


def sql_string(value: str) -> str:
    """A ClickHouse string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def sql_identifier(name: str) -> str:
    """A back-quoted ClickHouse identifier."""
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


# --- the engine -------------------------------------------------------------------------


class _EngineResult(Protocol):
    """The part of chDB's ``query_result`` the server reads."""

    def bytes(self) -> bytes: ...
    def rows_read(self) -> int: ...
    def bytes_read(self) -> int: ...
    def rows_written(self) -> int: ...
    def bytes_written(self) -> int: ...
    def elapsed(self) -> float: ...


class _EngineConnection(Protocol):
    """The part of ``chdb.session.Session`` the server calls."""

    def query(
        self, sql: str, fmt: str = ..., udf_path: str = ..., params: dict[str, str] | None = ...
    ) -> _EngineResult: ...
    def close(self) -> None: ...


def _connect(path: Path) -> _EngineConnection:
    """Open one chDB connection (its own ClickHouse session) on the process's engine."""
    from chdb.session import Session  # imported late: chDB is heavy to load

    def open_session() -> _EngineConnection:
        # chdb's Session is unannotated; its query() returns a query_result for byte formats.
        session: _EngineConnection = Session(str(path))  # type: ignore[no-untyped-call]
        return session

    return open_embedded(path, open_session)


@dataclass(frozen=True)
class Outcome:
    """What the engine produced for one statement."""

    body: bytes
    read_rows: int
    read_bytes: int
    written_rows: int
    written_bytes: int
    elapsed_ns: int


class Engine:
    """chDB on one data directory; every call holds one lock.

    An anchor connection stays open for the engine's lifetime, so the per-query
    connections (one per statement, see :meth:`run`) never restart the engine.
    """

    def __init__(self, data_dir: Path) -> None:
        self._path = data_dir
        self._lock = threading.Lock()
        self._anchor: _EngineConnection | None = _connect(data_dir)
        raw = self._anchor.query("SELECT version(), timezone()", "TabSeparated").bytes()
        version, timezone = raw.decode().rstrip("\n").split("\t")
        self.version = version
        self.timezone = timezone
        names = self._anchor.query("SELECT name FROM system.table_functions", "TabSeparated")
        self.table_functions = frozenset(names.bytes().decode().upper().split())
        """Every table function the engine knows, upper-cased (for the server's allow-list)."""

    def run(
        self,
        sql: str,
        *,
        fmt: str,
        readonly: ReadonlyLevel,
        settings: Mapping[str, str],
        params: Mapping[str, str],
        database: str | None,
    ) -> Outcome:
        """Run one statement in a fresh connection: ``readonly`` first, then ``settings``.

        Raises :class:`ClickHouseError` with the engine's code and message.
        """
        with self._lock:
            if self._anchor is None:
                raise ClickHouseError(210, "NETWORK_ERROR", "The store server is stopping")
            conn = _connect(self._path)
            try:
                if readonly:
                    conn.query(f"SET readonly = {readonly}", "TabSeparated")
                if settings:
                    assignments = ", ".join(f"{k} = {sql_string(v)}" for k, v in settings.items())
                    conn.query(f"SET {assignments}", "TabSeparated")
                if database:
                    conn.query(f"USE {sql_identifier(database)}", "TabSeparated")
                result = conn.query(sql, fmt, params=dict(params))
                return Outcome(
                    body=result.bytes(),
                    read_rows=result.rows_read(),
                    read_bytes=result.bytes_read(),
                    written_rows=result.rows_written(),
                    written_bytes=result.bytes_written(),
                    elapsed_ns=int(result.elapsed() * 1e9),
                )
            except ClickHouseError:
                raise
            except Exception as exc:  # chDB raises RuntimeError/ChdbError with CH's text
                raise ClickHouseError.from_engine(exc) from exc
            finally:
                conn.close()

    def close(self) -> None:
        """Close the anchor connection; later :meth:`run` calls fail."""
        with self._lock:
            if self._anchor is not None:
                self._anchor.close()
                self._anchor = None
