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
  ``user``/``password`` URL parameters. A request without credentials is refused (401,
  REQUIRED_PASSWORD) unless the server was started with ``insecure_no_auth``. A readonly
  user runs only reading statements, each with ``readonly=1``; a ``GET`` request runs with
  ``readonly=2``, as on a server.
* No user reaches the host's files, programs or network: table functions, engines,
  statements and host-file settings are allow-listed (:mod:`fulmen.store._sql_guard`).
* The output is the FORMAT the client asks for (a ``FORMAT`` clause, else
  ``default_format``, else ``TabSeparated``), exactly as the engine produced it.
  ``client_protocol_version`` is accepted and not honoured: chDB's Native output has no
  block-info prefix, and clickhouse-connect's start-up probe then falls back to protocol
  version 0, which is what chDB emits.
* Errors answer ClickHouse's HTTP status for the error code, the body
  ``Code: <n>. DB::Exception: <message> (version …)`` and ``X-ClickHouse-Exception-Code``.

This module is the socket side. A request's meaning (authentication, settings, the
statement, the reply) is :mod:`fulmen.store._http_service`; its body encodings, form fields
and content types, :mod:`fulmen.store._http_request`; how the engine runs queries, and which
errors it answers with, :mod:`fulmen.store._http_engine`; how the SQL is split,
:mod:`fulmen.store._sql_lexer`; who may connect, :mod:`fulmen.store._http_access`. HTTP
sessions (``session_id``) are accepted but keep no
state between requests.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType, TracebackType
from typing import Self

from fulmen.store._http_access import StoreServerError, accounts
from fulmen.store._http_engine import Engine
from fulmen.store._http_service import Service, StoreUser

__all__ = ["StoreServer", "StoreServerError", "serve"]

logger = logging.getLogger(__name__)


class _Handler(BaseHTTPRequestHandler):
    """Maps http.server's callbacks onto :class:`Service`."""

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
        headers = {key.lower(): value for key, value in self.headers.items()}
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

    def __init__(self, address: tuple[str, int], service: Service) -> None:
        super().__init__(address, _Handler)
        self.service = service


class StoreServer:
    """One process's chDB store, served to other processes over ClickHouse's HTTP protocol.

    ``data_dir`` is opened by this server's engine; no other process may open it.
    ``port=0`` binds a free port, readable from :attr:`port` once the server exists.
    ``users`` maps user names to :class:`StoreUser`, each with a password; a request without
    credentials is refused. ``insecure_no_auth`` (local development only, loopback ``host``
    only) admits requests without credentials as the writing user without a password (one
    user ``default`` when ``users`` is empty). Bad combinations raise
    :class:`StoreServerError` here.

    Use :meth:`start` (a background thread) or :meth:`serve_forever` (this thread), and
    :meth:`stop` once; or use the server as a context manager, which starts and stops it.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        users: Mapping[str, StoreUser],
        insecure_no_auth: bool = False,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.host = host
        self._requested_port = port
        self._users, self._anonymous = accounts(users, host=host, insecure_no_auth=insecure_no_auth)
        if self._anonymous is not None:
            logger.warning(
                "the store server on %s admits requests without credentials as the writing "
                "user %r (insecure_no_auth): for local development only",
                host,
                self._anonymous,
            )
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
            service = Service(self._engine, self._users, self._spool, anonymous=self._anonymous)
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


def serve(server: StoreServer, *, on_ready: Callable[[StoreServer], None] | None = None) -> None:
    """Run `server` until SIGINT or SIGTERM, then stop it; call from the main thread.

    ``on_ready`` is called with the started server (e.g. to print its URL).
    """
    stopping = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with server:
            if on_ready is not None:
                on_ready(server)
            while not stopping.wait(0.5):
                pass
    finally:
        for sig, handler in previous.items():
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(sig, handler)
