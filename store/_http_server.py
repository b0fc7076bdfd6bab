"""Serve the embedded chDB engine over the ClickHouse HTTP protocol.

chDB lets one process open a data directory, so the process that owns the LightningStore
runs a :class:`StoreServer`; every other process (clickhouse-connect, curl, any tool that
speaks ClickHouse over HTTP) reaches the store through it, unchanged.

Contract, as far as a client can tell it apart from a ClickHouse server:

* ``GET /ping`` (and ``GET /`` without a query) answers ``Ok.\\n``.
* The SQL is the ``query`` URL parameter, followed by a newline and the request body when
  both are present (ClickHouse's own rule). ``INSERT … FORMAT <fmt>`` takes its data from
  what follows the format name; the data is spooled to a temporary file and ingested with
  ``INSERT … FROM INFILE '<file>' FORMAT <fmt>``, then the file is deleted.
* URL parameters other than the protocol's own (:data:`_PROTOCOL_PARAMS`, ``param_*``
  query parameters) are ClickHouse settings of that one query.
* Authentication: ``X-ClickHouse-User``/``X-ClickHouse-Key`` headers, HTTP Basic, or the
  ``user``/``password`` URL parameters. A readonly user runs every query with
  ``readonly=1``; a ``GET`` request runs with ``readonly=2``, as on a server.
* The output is the FORMAT the client asks for (a ``FORMAT`` clause, else
  ``default_format``, else ``TabSeparated``), exactly as the engine produced it.
  ``client_protocol_version`` is accepted and not honoured: chDB's Native output has no
  block-info prefix, and clickhouse-connect's start-up probe then falls back to protocol
  version 0, which is what chDB emits.
* Errors answer ClickHouse's HTTP status for the error code, the body
  ``Code: <n>. DB::Exception: <message> (version …)`` and ``X-ClickHouse-Exception-Code``.

How the engine runs queries, and which errors it answers with, is
:mod:`fulmen.store._http_engine`; how the SQL is split, :mod:`fulmen.store._sql_lexer`.
HTTP sessions (``session_id``) are accepted but keep no state between requests.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import gzip
import hmac
import json
import logging
import re
import shutil
import signal
import socket
import tempfile
import threading
import uuid
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from email.parser import BytesParser
from email.policy import HTTP as HTTP_POLICY
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Self
from urllib.parse import parse_qsl, urlsplit

from fulmen.errors import FulmenError
from fulmen.store._http_engine import ClickHouseError, Engine, Outcome, ReadonlyLevel, sql_string
from fulmen.store._sql_lexer import Statement, host_access_calls, parse_statement, sql_text

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["StoreServer", "StoreServerError", "StoreUser", "serve"]

logger = logging.getLogger(__name__)

DEFAULT_USER = "default"
"""The user a request names when it names none; it exists when ``users`` is empty."""

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


class StoreServerError(FulmenError):
    """The store server could not start or was used outside its contract."""


@dataclass(frozen=True)
class StoreUser:
    """One account of the store server.

    ``password`` is compared in constant time; ``readonly`` users run every query with
    ClickHouse's ``readonly=1``, so writes, DDL and setting changes fail with the engine's
    own READONLY error.
    """

    password: str
    readonly: bool = False


# --- the request ------------------------------------------------------------------------


_CONTENT_TYPES: tuple[tuple[str, str], ...] = (
    ("TabSeparated", "text/tab-separated-values; charset=UTF-8"),
    ("TSV", "text/tab-separated-values; charset=UTF-8"),
    ("CSVWithNames", "text/csv; charset=UTF-8; header=present"),
    ("CSV", "text/csv; charset=UTF-8; header=absent"),
    ("JSON", "application/json; charset=UTF-8"),
    ("XML", "application/xml; charset=UTF-8"),
    ("Pretty", "text/plain; charset=UTF-8"),
    ("Vertical", "text/plain; charset=UTF-8"),
    ("Markdown", "text/markdown; charset=UTF-8"),
    ("Values", "text/plain; charset=UTF-8"),
    ("Raw", "text/plain; charset=UTF-8"),
    ("LineAsString", "text/plain; charset=UTF-8"),
)


def _content_type(fmt: str) -> str:
    for prefix, content_type in _CONTENT_TYPES:
        if fmt.startswith(prefix):
            return content_type
    return "application/octet-stream"


def _decode_body(body: bytes, encoding: str) -> bytes:
    """Undo a request's Content-Encoding (what clickhouse-connect sends: lz4, zstd, …)."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    try:
        if encoding in ("gzip", "x-gzip"):
            return gzip.decompress(body)
        if encoding == "deflate":
            return zlib.decompress(body)
        if encoding == "lz4":
            import lz4.frame  # type: ignore[import-untyped]  # lz4 ships no type stubs

            decoded: bytes = lz4.frame.decompress(body)
            return decoded
        if encoding == "zstd":
            from backports import zstd  # the zstd module clickhouse-connect uses

            return zstd.decompress(body)
    except Exception as exc:
        message = f"Cannot decompress the request body ({encoding}): {exc}"
        raise ClickHouseError(271, "CANNOT_DECOMPRESS", message) from exc
    raise ClickHouseError(
        48, "NOT_IMPLEMENTED", f"Unknown Content-Encoding of the request body: {encoding}"
    )


def _form_fields(body: bytes, content_type: str) -> dict[str, str]:
    """The text fields of a multipart/form-data body (query and ``param_*``)."""
    head = f"Content-Type: {content_type}\r\n\r\n".encode()
    message = BytesParser(policy=HTTP_POLICY).parsebytes(head + body)
    fields: dict[str, str] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        if part.get_filename() is not None:
            raise ClickHouseError(
                48, "NOT_IMPLEMENTED", "External data (temporary tables) is not supported"
            )
        payload = part.get_payload(decode=True)
        fields[name] = payload.decode() if isinstance(payload, bytes) else ""
    return fields


@dataclass(frozen=True)
class _Reply:
    status: int
    body: bytes
    headers: dict[str, str]


class _Service:
    """The HTTP interface's semantics, apart from the socket: a request in, a reply out."""

    def __init__(self, engine: Engine, users: Mapping[str, StoreUser], spool: Path) -> None:
        self._engine = engine
        self._users = dict(users) if users else {DEFAULT_USER: StoreUser(password="")}
        self._spool = spool
        self._display_name = socket.gethostname()

    def common_headers(self, query_id: str) -> dict[str, str]:
        return {
            "X-ClickHouse-Server-Display-Name": self._display_name,
            "X-ClickHouse-Query-Id": query_id,
            "X-ClickHouse-Timezone": self._engine.timezone,
            "Keep-Alive": "timeout=10, max=10000",
        }

    def error(self, exc: ClickHouseError, query_id: str) -> _Reply:
        headers = self.common_headers(query_id)
        headers["Content-Type"] = "text/plain; charset=UTF-8"
        headers["X-ClickHouse-Exception-Code"] = str(exc.code)
        return _Reply(exc.http_status, exc.body(self._engine.version), headers)

    def authenticate(
        self, params: Mapping[str, str], request_headers: Mapping[str, str]
    ) -> StoreUser:
        """The user the request names, or a 403 AUTHENTICATION_FAILED error."""
        name: str | None = request_headers.get("X-ClickHouse-User")
        password = request_headers.get("X-ClickHouse-Key", "")
        authorization = request_headers.get("Authorization", "")
        if name is None and authorization[:6].lower() == "basic ":
            try:
                decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError) as exc:
                raise ClickHouseError(
                    516, "AUTHENTICATION_FAILED", "Malformed Basic authorization"
                ) from exc
            name, _, password = decoded.partition(":")
        if name is None:
            name = params.get("user", DEFAULT_USER)
            password = params.get("password", "")
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
    ) -> _Reply:
        """Answer one request; never raises for a client's mistake."""
        url = urlsplit(target)
        params = dict(parse_qsl(url.query, keep_blank_values=True))
        query_id = params.get("query_id") or str(uuid.uuid4())
        path = url.path.rstrip("/") or "/"
        if path in ("/ping", "/replicas_status") and method in ("GET", "HEAD"):
            return _Reply(200, b"Ok.\n", {"Content-Type": "text/html; charset=UTF-8"})
        if path != "/":
            error = ClickHouseError(
                48, "NOT_IMPLEMENTED", f"There is no handler {url.path} for {method}"
            )
            reply = self.error(error, query_id)
            return _Reply(404, reply.body, reply.headers)
        try:
            body = _decode_body(body, request_headers.get("Content-Encoding", ""))
            content_type = request_headers.get("Content-Type", "")
            if content_type.lower().startswith("multipart/form-data"):
                params.update(_form_fields(body, content_type))
                body = b""
            if method in ("GET", "HEAD") and not params.get("query"):
                return _Reply(200, b"Ok.\n", {"Content-Type": "text/html; charset=UTF-8"})
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
    ) -> _Reply:
        if params.get("compress") == "1" or params.get("decompress") == "1":
            raise ClickHouseError(
                48, "NOT_IMPLEMENTED", "ClickHouse block compression (compress/decompress=1)"
            )
        query_param = params.get("query", "").encode()
        sql = query_param + b"\n" + body if query_param and body else query_param or body
        statement = parse_statement(sql)
        if statement.forbidden:
            raise ClickHouseError(48, "NOT_IMPLEMENTED", statement.forbidden)
        if user.readonly and (calls := host_access_calls(statement.head)):
            raise ClickHouseError(
                497,
                "ACCESS_DENIED",
                f"{calls[0]}() reaches the store host's files, programs or network; "
                "read-only users may not call it",
            )
        settings: dict[str, str] = {}
        bound: dict[str, str] = {}
        for key, value in params.items():
            if key.startswith("param_"):
                bound[key[len("param_") :]] = value
            elif key not in _PROTOCOL_PARAMS:
                if not _SETTING_NAME.match(key):
                    raise ClickHouseError(115, "UNKNOWN_SETTING", f"Unknown setting '{key}'")
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
        headers["Content-Type"] = _content_type(fmt)
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
        return _Reply(200, outcome.body, headers)

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


# --- the HTTP server --------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    """Maps http.server's callbacks onto :class:`_Service`."""

    protocol_version = "HTTP/1.1"
    # Headers and body leave in two writes; with Nagle on, keep-alive clients wait for a
    # delayed ACK (~40 ms) on every response.
    disable_nagle_algorithm = True
    server: _HTTPServer

    def do_GET(self) -> None:
        self._serve("GET")

    def do_HEAD(self) -> None:
        self._serve("HEAD")

    def do_POST(self) -> None:
        self._serve("POST")

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts: list[bytes] = []
            while True:
                size_line = self.rfile.readline(65537)
                if not size_line:
                    raise ConnectionError("the client closed a chunked body early")
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline(65537)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _serve(self, method: str) -> None:
        try:
            body = self._read_body()
        except (ValueError, ConnectionError):
            self.close_connection = True
            self.send_error(400, "Malformed request body")
            return
        headers = {key: value for key, value in self.headers.items()}
        reply = self.server.service.handle(method, self.path, headers, body)
        self.send_response(reply.status)
        for key, value in reply.headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(reply.body)

    def log_message(self, format: str, *args: object) -> None:
        logger.debug("%s - " + format, self.address_string(), *args)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], service: _Service) -> None:
        super().__init__(address, _Handler)
        self.service = service


class StoreServer:
    """One process's chDB store, served to other processes over ClickHouse's HTTP protocol.

    ``data_dir`` is opened by this server's engine; no other process may open it.
    ``port=0`` binds a free port, readable from :attr:`port` once the server exists.
    ``users`` maps user names to :class:`StoreUser`; empty means one user ``default``
    with an empty password that can write.

    Use :meth:`start` (a background thread) or :meth:`serve_forever` (this thread), and
    :meth:`stop` once; or use the server as a context manager, which starts and stops it.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        users: Mapping[str, StoreUser] | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.host = host
        self._requested_port = port
        self._users = dict(users or {})
        self._engine: Engine | None = None
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._spool: Path | None = None

    @property
    def port(self) -> int:
        """The bound port (the requested one until the server is started)."""
        if self._httpd is None:
            return self._requested_port
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """``http://host:port`` of the running server."""
        return f"http://{self.host}:{self.port}"

    def _bind(self) -> _HTTPServer:
        if self._httpd is not None:
            raise StoreServerError("the store server is already started")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._spool = Path(tempfile.mkdtemp(prefix="fulmen-store-spool-"))
        try:
            self._engine = Engine(self.data_dir)
            service = _Service(self._engine, self._users, self._spool)
            self._httpd = _HTTPServer((self.host, self._requested_port), service)
        except BaseException:
            self._release()
            raise
        return self._httpd

    def start(self) -> Self:
        """Open the engine, bind, and serve on a daemon thread; returns at once."""
        httpd = self._bind()
        self._thread = threading.Thread(
            target=httpd.serve_forever, name=f"fulmen-store-http-{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Open the engine, bind, and serve on this thread until :meth:`stop`."""
        self._bind().serve_forever()

    def stop(self) -> None:
        """Stop serving, close the engine and the socket; idempotent."""
        if self._httpd is not None:
            self._httpd.shutdown()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._release()

    def _release(self) -> None:
        if self._httpd is not None:
            self._httpd.server_close()
            self._httpd = None
        if self._engine is not None:
            self._engine.close()
            self._engine = None
        if self._spool is not None:
            shutil.rmtree(self._spool, ignore_errors=True)
            self._spool = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def serve(
    data_dir: Path,
    host: str = "127.0.0.1",
    port: int = 8123,
    users: Mapping[str, StoreUser] | None = None,
    *,
    on_ready: Callable[[StoreServer], None] | None = None,
) -> None:
    """Serve ``data_dir`` until SIGINT or SIGTERM; call from the main thread.

    ``on_ready`` is called with the started server (e.g. to print its URL).
    """
    stopping = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with StoreServer(data_dir, host=host, port=port, users=users) as server:
            if on_ready is not None:
                on_ready(server)
            while not stopping.wait(0.5):
                pass
    finally:
        for sig, handler in previous.items():
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(sig, handler)
