"""A pooled HTTP/1.1 client on asyncio and httptools: the gateway's connections to its
upstream.

Why not aiohttp (which the gateway used before): per request its client spent 0.37 ms of
CPU against 0.06 ms for this one (the same keep-alive POST to a local server, measured on
this project's 2-core machine; docs/gateway.md), and on a proxy that CPU is latency. The
gateway needs little of a general client: one origin, keep-alive, no redirects, cookies,
proxies or decompression. What it does need is here: a bounded pool, connect and read
timeouts, HTTPS, responses relayed as they arrive with back-pressure on the upstream, and a
retry when a pooled connection turns out to have been closed by the server before it
answered anything.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import AsyncIterator
from typing import cast
from urllib.parse import urlsplit

import httptools

# The upstream is paused while this much of a response waits for the agent to take it.
_HIGH_WATER_BYTES = 256 << 10
_LOW_WATER_BYTES = 64 << 10


class HttpError(Exception):
    """The request could not be completed; subclasses say why."""


class ConnectError(HttpError):
    """No connection: refused, unresolvable, or not made (or none free) in time."""


class ReadTimeout(HttpError):
    """The upstream sent nothing for longer than the read timeout."""


class Disconnected(HttpError):
    """The connection broke, or the response was malformed, before the response ended."""


class _Connection(asyncio.Protocol):
    """One keep-alive connection, carrying one request at a time; its response is parsed
    as the bytes arrive and handed over through `head` and `next_chunk`."""

    def __init__(self, read_timeout_s: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._read_timeout_s = read_timeout_s
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._body: deque[bytes] = deque()
        self._buffered = 0
        self._paused = False
        self.closed = False
        self._reset(head_only=False)

    def _reset(self, *, head_only: bool) -> None:
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self._head_only = head_only
        self._head_done = False
        self._until_close = False
        self.done = False
        self.keep_alive = False
        self._error: HttpError | None = None

    # -- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not `asyncio.Transport` subclasses, but have its methods
        self._transport = cast("asyncio.Transport", transport)

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(Disconnected(f"malformed response: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._head_done and self._until_close and not self.done:
            self.done = True  # a body without length ends with the connection
            self._wake()
        elif not self.done:
            self._fail(Disconnected(f"the connection closed{f': {exc!r}' if exc else ''}"))

    def attach(self, transport: asyncio.BaseTransport) -> None:
        """Take the transport `create_connection` returned: uvloop may call
        `connection_made` only after returning it."""
        if self._transport is None:
            self.connection_made(transport)

    # -- httptools callbacks -----------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200:  # an interim answer (100 Continue): the real one follows
            self.headers = []
            return
        self.status = status
        self._head_done = True
        names = {name.lower() for name, _ in self.headers}
        self._until_close = b"content-length" not in names and b"transfer-encoding" not in names
        if self._head_only:
            self.done = True  # the response to HEAD has no body, whatever its length says
        self._wake()

    def on_body(self, body: bytes) -> None:
        self._body.append(body)
        self._buffered += len(body)
        if self._buffered > _HIGH_WATER_BYTES and not self._paused and self._transport:
            self._paused = True
            self._transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if not self._head_done:  # the end of an interim answer
            return
        self.done = True
        self.keep_alive = self._parser.should_keep_alive() and not self._head_only
        self._wake()

    # -- one exchange ------------------------------------------------------------------------

    def send(self, request: bytes, *, head_only: bool) -> None:
        assert self._transport is not None
        assert not self.closed
        self._reset(head_only=head_only)
        self._transport.write(request)

    async def head(self) -> None:
        """Wait for the status line and headers."""
        while not self._head_done:
            await self._wait()

    async def next_chunk(self) -> bytes | None:
        """The next piece of the body as it arrived; None once the body has ended."""
        while not self._body:
            if self.done:
                return None
            await self._wait()
        chunk = self._body.popleft()
        self._buffered -= len(chunk)
        if self._paused and self._buffered < _LOW_WATER_BYTES and self._transport:
            self._paused = False
            self._transport.resume_reading()
        return chunk

    def close(self) -> None:
        self.closed = True
        if self._transport is not None:
            self._transport.close()

    async def _wait(self) -> None:
        if self._error is not None:
            raise self._error
        waiter = self._waiter = self._loop.create_future()
        timer = self._loop.call_later(self._read_timeout_s, self._time_out)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None
        if self._error is not None:
            raise self._error

    def _time_out(self) -> None:
        self._fail(ReadTimeout(f"nothing received for {self._read_timeout_s} s"))

    def _fail(self, error: HttpError) -> None:
        if self._error is None:
            self._error = error
        self.close()
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


class Response:
    """A response whose status and headers have arrived. Read its body whole (`read`) or as
    it arrives (`chunks`); `release` must follow, whatever happened."""

    def __init__(self, pool: Pool, connection: _Connection) -> None:
        self._pool = pool
        self._connection = connection
        self._released = False
        self.status = connection.status
        self.headers = connection.headers

    async def read(self) -> bytes:
        parts = [chunk async for chunk in self.chunks()]
        return b"".join(parts)

    async def chunks(self) -> AsyncIterator[bytes]:
        while (chunk := await self._connection.next_chunk()) is not None:
            yield chunk

    def release(self) -> None:
        """Back to the pool once the body was read to its end (and the server keeps the
        connection open), else closed."""
        if not self._released:
            self._released = True
            connection = self._connection
            self._pool.give_back(connection, reusable=connection.done and connection.keep_alive)


class Pool:
    """At most `limit` connections to the origin of `base_url` (http or https), kept open
    between requests. `connect_timeout_s` bounds both making a connection and waiting for
    a free one; `read_timeout_s` bounds each wait for the next bytes of a response."""

    def __init__(
        self, base_url: str, *, limit: int, connect_timeout_s: float, read_timeout_s: float
    ) -> None:
        url = urlsplit(base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self._host = url.hostname
        self._port = url.port or (443 if url.scheme == "https" else 80)
        self._ssl = ssl.create_default_context() if url.scheme == "https" else None
        default_port = self._port == (443 if url.scheme == "https" else 80)
        authority = f"[{self._host}]" if ":" in self._host else self._host
        self._host_header = (authority if default_port else f"{authority}:{self._port}").encode()
        self.base_path = url.path.rstrip("/") + "/"
        self._limit = limit
        self._connect_timeout_s = connect_timeout_s
        self._read_timeout_s = read_timeout_s
        self._slots: asyncio.Semaphore | None = None
        self._idle: list[_Connection] = []

    async def request(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes
    ) -> Response:
        """Send a request for `target` (path and query) and return once its status and
        headers arrived. Raises `ConnectError`, `ReadTimeout` or `Disconnected`."""
        message = self._message(method, target, headers, body)
        await self._take_slot()
        connection: _Connection | None = None
        try:
            while True:
                connection = self._idle.pop() if self._idle else None
                reused = connection is not None and not connection.closed
                if not reused:
                    connection = await self._connect()
                assert connection is not None
                connection.send(message, head_only=method == "HEAD")
                try:
                    await connection.head()
                except Disconnected:
                    # A kept-alive connection the server closed while idle: it answered
                    # nothing, so the request is sent again on a new connection.
                    if reused and not connection.headers:
                        connection.close()
                        continue
                    raise
                return Response(self, connection)
        except BaseException:
            self.give_back(connection, reusable=False)
            raise

    def give_back(self, connection: _Connection | None, *, reusable: bool) -> None:
        """Return `connection`'s slot, keeping the connection for reuse when `reusable`."""
        if connection is not None:
            if reusable and not connection.closed:
                self._idle.append(connection)
            else:
                connection.close()
        assert self._slots is not None
        self._slots.release()

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()

    async def _take_slot(self) -> None:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self._limit)
        if not self._slots.locked():
            await self._slots.acquire()
            return
        try:
            await asyncio.wait_for(self._slots.acquire(), self._connect_timeout_s)
        except TimeoutError as exc:
            raise ConnectError(
                f"no free connection within {self._connect_timeout_s} s ({self._limit} in use)"
            ) from exc

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            transport, connection = await asyncio.wait_for(
                loop.create_connection(
                    lambda: _Connection(self._read_timeout_s),
                    self._host,
                    self._port,
                    ssl=self._ssl,
                ),
                self._connect_timeout_s,
            )
        except TimeoutError as exc:
            raise ConnectError(
                f"no connection to {self._host}:{self._port} within {self._connect_timeout_s} s"
            ) from exc
        except OSError as exc:
            raise ConnectError(f"cannot connect to {self._host}:{self._port}: {exc!r}") from exc
        connection.attach(transport)
        return connection

    def _message(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes
    ) -> bytes:
        lines = [f"{method} {target} HTTP/1.1".encode(), b"host: " + self._host_header]
        lines.extend(f"{name}: {value}".encode("latin-1") for name, value in headers)
        if body or method not in ("GET", "HEAD", "DELETE"):
            lines.append(b"content-length: %d" % len(body))
        return b"\r\n".join(lines) + b"\r\n\r\n" + body
