"""The store server's HTTP interface apart from the socket: one request in, one reply out.

:class:`Service` authenticates the user, splits the SQL (:mod:`fulmen.store._sql_lexer`),
refuses what a client may not run, and hands the statement to the engine
(:mod:`fulmen.store._http_engine`). An ``INSERT … FORMAT <fmt>``'s data reaches the engine
as the client sent it (Arrow, Native, …: spooled to a file, never decoded here), and a
query's output is the engine's bytes in the asked format, unchanged.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import re
import socket
import tempfile
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from fulmen.store._http_engine import ClickHouseError, Engine, Outcome, ReadonlyLevel, sql_string
from fulmen.store._http_request import content_type, decode_body, form_fields
from fulmen.store._sql_guard import check_setting, check_statement
from fulmen.store._sql_lexer import Statement, parse_statement, sql_text

DEFAULT_USER = "default"
"""The user a request names when it names a password but no user."""

_PROTOCOL_PARAMS = frozenset(
    {
        "query",
        "database",
        "default_format",
        "user",
        "password",
        "query_id",
        "quota_key",
        "stacktrace",
        "role",
        "session_id",
        "session_timeout",
        "session_check",
        "close_session",
        "client_protocol_version",
        "compress",
        "decompress",
        "buffer_size",
        "wait_end_of_query",
    }
)
"""URL parameters the HTTP interface itself consumes; they are not ClickHouse settings."""

_SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DEFAULT_FORMAT = "TabSeparated"


@dataclass(frozen=True)
class StoreUser:
    """One account of the store server.

    ``password`` is compared in constant time. ``readonly`` users may run only reading
    statements (:data:`fulmen.store._sql_guard.READER_STATEMENTS`), and the engine runs
    them with ClickHouse's ``readonly=1``, so writes, DDL and setting changes also fail with
    the engine's own READONLY error.
    """

    password: str
    readonly: bool = False


@dataclass(frozen=True)
class Reply:
    """One HTTP answer: status, body and headers (Content-Length is the socket side's)."""

    status: int
    body: bytes
    headers: dict[str, str]


class Service:
    """The HTTP interface's semantics, apart from the socket: a request in, a reply out.

    ``users`` are the accounts. A request that names no user and no password runs as
    ``anonymous`` when that is set (development only), else it is refused with
    REQUIRED_PASSWORD (HTTP 401).
    """

    def __init__(
        self,
        engine: Engine,
        users: Mapping[str, StoreUser],
        spool: Path,
        *,
        anonymous: str | None = None,
    ) -> None:
        if anonymous is not None and anonymous not in users:
            raise ValueError(f"the anonymous user {anonymous!r} is not one of the users")
        self._engine = engine
        self._users = dict(users)
        self._anonymous = anonymous
        self._spool = spool
        self._display_name = socket.gethostname()

    def common_headers(self, query_id: str) -> dict[str, str]:
        return {
            "X-ClickHouse-Server-Display-Name": self._display_name,
            "X-ClickHouse-Query-Id": query_id,
            "X-ClickHouse-Timezone": self._engine.timezone,
            "Keep-Alive": "timeout=10, max=10000",
        }

    def error(self, exc: ClickHouseError, query_id: str) -> Reply:
        headers = self.common_headers(query_id)
        headers["Content-Type"] = "text/plain; charset=UTF-8"
        headers["X-ClickHouse-Exception-Code"] = str(exc.code)
        return Reply(exc.http_status, exc.body(self._engine.version), headers)

    def authenticate(
        self, params: Mapping[str, str], request_headers: Mapping[str, str]
    ) -> StoreUser:
        """The user the request names; a 401 REQUIRED_PASSWORD error when it names neither
        user nor password (and no anonymous user is set); else a 403 AUTHENTICATION_FAILED
        error."""
        name: str | None = request_headers.get("x-clickhouse-user")
        password = request_headers.get("x-clickhouse-key", "")
        authorization = request_headers.get("authorization", "")
        if name is None and authorization[:6].lower() == "basic ":
            try:
                decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError) as exc:
                raise ClickHouseError(
                    516, "AUTHENTICATION_FAILED", "Malformed Basic authorization"
                ) from exc
            name, _, password = decoded.partition(":")
        if name is None:
            name = params.get("user")
            password = params.get("password", "")
        if not name and not password:
            if self._anonymous is None:
                raise ClickHouseError(
                    194,
                    "REQUIRED_PASSWORD",
                    "Authentication required: name a user and its password (X-ClickHouse-User "
                    "and X-ClickHouse-Key, HTTP Basic, or the user and password parameters)",
                )
            name = self._anonymous
        name = name or DEFAULT_USER
        user = self._users.get(name)
        if user is None or not hmac.compare_digest(user.password.encode(), password.encode()):
            raise ClickHouseError(
                516,
                "AUTHENTICATION_FAILED",
                f"{name}: Authentication failed: password is incorrect, "
                "or there is no user with such name. (AUTHENTICATION_FAILED)",
            )
        return user

    def handle(
        self,
        method: str,
        target: str,
        request_headers: Mapping[str, str],
        body: bytes,
    ) -> Reply:
        """Answer one request (header names lower-cased); never raises for a client's mistake."""
        url = urlsplit(target)
        params = dict(parse_qsl(url.query, keep_blank_values=True))
        query_id = params.get("query_id") or str(uuid.uuid4())
        path = url.path.rstrip("/") or "/"
        if path in ("/ping", "/replicas_status") and method in ("GET", "HEAD"):
            return Reply(200, b"Ok.\n", {"Content-Type": "text/html; charset=UTF-8"})
        if path != "/":
            error = ClickHouseError(
                48, "NOT_IMPLEMENTED", f"There is no handler {url.path} for {method}"
            )
            reply = self.error(error, query_id)
            return Reply(404, reply.body, reply.headers)
        try:
            body = decode_body(body, request_headers.get("content-encoding", ""))
            body_type = request_headers.get("content-type", "")
            if body_type.lower().startswith("multipart/form-data"):
                params.update(form_fields(body, body_type))
                body = b""
            if method in ("GET", "HEAD") and not params.get("query"):
                return Reply(200, b"Ok.\n", {"Content-Type": "text/html; charset=UTF-8"})
            user = self.authenticate(params, request_headers)
            return self._execute(method, params, user, body, query_id)
        except ClickHouseError as exc:
            return self.error(exc, query_id)

    def _execute(
        self,
        method: str,
        params: Mapping[str, str],
        user: StoreUser,
        body: bytes,
        query_id: str,
    ) -> Reply:
        if params.get("compress") == "1" or params.get("decompress") == "1":
            raise ClickHouseError(
                48, "NOT_IMPLEMENTED", "ClickHouse block compression (compress/decompress=1)"
            )
        statement = _statement(params.get("query", "").encode(), body)
        if statement.forbidden:
            raise ClickHouseError(48, "NOT_IMPLEMENTED", statement.forbidden)
        check_statement(
            statement.head + b"\n" + statement.tail,
            readonly=user.readonly,
            table_functions=self._engine.table_functions,
        )
        settings: dict[str, str] = {}
        bound: dict[str, str] = {}
        for key, value in params.items():
            if key.startswith("param_"):
                bound[key[len("param_") :]] = value
            elif key not in _PROTOCOL_PARAMS:
                if not _SETTING_NAME.match(key):
                    raise ClickHouseError(115, "UNKNOWN_SETTING", f"Unknown setting '{key}'")
                check_setting(key)
                settings[key] = value
        readonly: ReadonlyLevel = 1 if user.readonly else 2 if method in ("GET", "HEAD") else 0
        default_format = params.get("default_format") or _DEFAULT_FORMAT
        fmt = statement.fmt or default_format
        run: Callable[[str], Outcome] = lambda text: self._engine.run(  # noqa: E731
            text,
            fmt=default_format,
            readonly=readonly,
            settings=settings,
            params=bound,
            database=params.get("database") or None,
        )
        if statement.data is not None:
            outcome = self._insert(statement, statement.data, run)
        else:
            outcome = run(sql_text(statement.head))
        headers = self.common_headers(query_id)
        headers["Content-Type"] = content_type(fmt)
        headers["X-ClickHouse-Format"] = fmt
        headers["X-ClickHouse-Summary"] = json.dumps(
            {
                "read_rows": str(outcome.read_rows),
                "read_bytes": str(outcome.read_bytes),
                "written_rows": str(outcome.written_rows),
                "written_bytes": str(outcome.written_bytes),
                "total_rows_to_read": str(outcome.read_rows),
                "result_rows": "0",
                "result_bytes": str(len(outcome.body)),
                "elapsed_ns": str(outcome.elapsed_ns),
            },
            separators=(",", ":"),
        )
        return Reply(200, outcome.body, headers)

    def _insert(self, statement: Statement, data: bytes, run: Callable[[str], Outcome]) -> Outcome:
        """Spool ``data`` and ingest it with ``INSERT … FROM INFILE``; delete the spool."""
        with tempfile.NamedTemporaryFile(dir=self._spool, suffix=".data", delete=False) as f:
            f.write(data)
            spooled = Path(f.name)
        try:
            head = sql_text(statement.head).rstrip()
            tail = sql_text(statement.tail).strip()
            infile = f"FROM INFILE {sql_string(str(spooled))}"
            sql = f"{head} {infile} {tail} FORMAT {statement.fmt}"
            return run(sql)
        finally:
            spooled.unlink(missing_ok=True)


def _statement(query: bytes, body: bytes) -> Statement:
    """The request's statement: its SQL is the ``query`` parameter, a newline and the body
    (ClickHouse's rule). When the parameter holds a whole ``INSERT … FORMAT <fmt>``, the
    body is its data as sent: it is not copied into the SQL, scanned, or decoded."""
    if not (query and body):
        return parse_statement(query or body)
    insert = parse_statement(query + b"\n")
    if insert.data is not None:
        return replace(insert, data=insert.data + body if insert.data else body)
    return parse_statement(query + b"\n" + body)
