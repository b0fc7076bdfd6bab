"""The gateway's HTTP/1.1 client (`_http1.Pool`) against a real asyncio TCP server that
answers with scripted bytes: keep-alive reuse, a pooled connection the server closed, the
read and connect timeouts, bodies by length, chunks and connection close, interim answers,
HEAD, and back-pressure on a response nobody reads."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from fulmen.producers.gateway._http1 import ConnectError, Disconnected, Pool, ReadTimeout

pytestmark = pytest.mark.integration


class Server:
    """Answers each request on a connection with `answer(request_head)` bytes; counts
    connections and requests; `close_idle` closes each connection after its first answer."""

    def __init__(self, answer: Callable[[bytes], bytes | None], *, close_idle: bool = False):
        self.answer = answer
        self.close_idle = close_idle
        self.connections = 0
        self.requests: list[bytes] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                body = await reader.readexactly(length)
                self.requests.append(head + body)
                answer = self.answer(head)
                if answer is None:  # stay silent
                    await asyncio.sleep(3600)
                writer.write(answer or b"")
                await writer.drain()
                if self.close_idle:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@asynccontextmanager
async def serving(server: Server) -> AsyncIterator[str]:
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        listener.close()


def ok(body: bytes = b'{"ok":true}', *extra: bytes) -> bytes:
    headers = b"".join(h + b"\r\n" for h in extra)
    return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n%b\r\n%b" % (len(body), headers, body)


def pool(url: str, *, limit: int = 4, read_timeout_s: float = 5.0) -> Pool:
    return Pool(url, limit=limit, connect_timeout_s=0.5, read_timeout_s=read_timeout_s)


async def get(client: Pool, target: str = "/v1/models", method: str = "POST") -> bytes:
    response = await client.request(method, target, [("x-agent", "a")], b"{}")
    try:
        return await response.read()
    finally:
        response.release()


async def test_a_kept_alive_connection_serves_the_next_request() -> None:
    server = Server(lambda head: ok())
    async with serving(server) as url:
        client = pool(url)
        assert [await get(client) for _ in range(3)] == [b'{"ok":true}'] * 3
        client.close()
    assert server.connections == 1
    first = server.requests[0]
    assert first.startswith(b"POST /v1/models HTTP/1.1\r\nhost: 127.0.0.1:")
    assert b"\r\nx-agent: a\r\ncontent-length: 2\r\n\r\n{}" in first


async def test_a_connection_the_server_closed_while_idle_is_replaced() -> None:
    server = Server(lambda head: ok(), close_idle=True)
    async with serving(server) as url:
        client = pool(url)
        await get(client)
        await asyncio.sleep(0.05)  # the server's close arrives while the connection idles
        assert await get(client) == b'{"ok":true}'
        client.close()
    assert server.connections == 2


async def test_a_server_that_says_close_is_not_reused() -> None:
    server = Server(lambda head: ok(b"{}", b"connection: close"))
    async with serving(server) as url:
        client = pool(url)
        await get(client)
        await get(client)
        client.close()
    assert server.connections == 2


async def test_chunked_bodies_arrive_piece_by_piece_and_interim_answers_are_skipped() -> None:
    chunked = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n"
        b"\r\n6\r\ndata: \r\n3\r\n1\n\n\r\n0\r\n\r\n"
    )
    server = Server(lambda head: chunked)
    async with serving(server) as url:
        client = pool(url)
        response = await client.request("POST", "/v1/chat/completions", [], b"{}")
        assert response.status == 200
        assert (b"content-type", b"text/event-stream") in response.headers
        assert b"".join([chunk async for chunk in response.chunks()]) == b"data: 1\n\n"
        response.release()
        assert await get(client) == b"data: 1\n\n"  # the connection was kept
        client.close()
    assert server.connections == 1


async def test_a_body_without_length_ends_with_the_connection() -> None:
    server = Server(lambda head: b"HTTP/1.1 200 OK\r\n\r\nuntil close", close_idle=True)
    async with serving(server) as url:
        client = pool(url)
        assert await get(client) == b"until close"
        client.close()


async def test_head_answers_have_no_body() -> None:
    server = Server(lambda head: b"HTTP/1.1 200 OK\r\ncontent-length: 50\r\n\r\n")
    async with serving(server) as url:
        client = pool(url)
        assert await get(client, method="HEAD") == b""
        client.close()


async def test_silence_is_a_read_timeout_and_a_broken_answer_a_disconnect() -> None:
    silent = Server(lambda head: None)
    async with serving(silent) as url:
        client = pool(url, read_timeout_s=0.2)
        with pytest.raises(ReadTimeout):
            await get(client)
        client.close()
    short = b"HTTP/1.1 200 OK\r\ncontent-length: 50\r\n\r\nshort"
    cut = Server(lambda head: short, close_idle=True)
    async with serving(cut) as url:
        client = pool(url)
        with pytest.raises(Disconnected):
            await get(client)
        client.close()


async def test_nothing_listening_and_a_full_pool_are_connect_errors() -> None:
    async with serving(Server(lambda head: ok())) as url:
        pass
    with pytest.raises(ConnectError, match="cannot connect"):
        await get(pool(url))
    silent = Server(lambda head: None)
    async with serving(silent) as url:
        client = pool(url, limit=1)
        waiting = asyncio.ensure_future(client.request("POST", "/v1/x", [], b"{}"))
        await asyncio.sleep(0.05)
        with pytest.raises(ConnectError, match="no free connection"):
            await get(client)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        client.close()


async def test_a_response_nobody_reads_pauses_the_upstream() -> None:
    size = 8 << 20
    server = Server(lambda head: ok(b"x" * size))
    async with serving(server) as url:
        client = pool(url)
        response = await client.request("POST", "/v1/big", [], b"{}")
        await asyncio.sleep(0.2)
        connection = response._connection  # the buffer is the point
        assert connection._buffered < 1 << 20
        assert len(await response.read()) == size
        response.release()
        client.close()
