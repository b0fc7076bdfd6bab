"""uvicorn's httptools protocol with each response's writes sent together.

uvicorn writes a response's status line and headers as soon as the app starts the response,
then its body: two sends. The first wakes the agent, which on a busy machine is scheduled
in between and reads the headers before the gateway has written the body; measured on this
project's 2 cores, that cost a non-streamed call about half a millisecond at the median
(docs/gateway.md). Here the writes made within one turn of the event loop leave as one
send at the end of the turn: a whole non-streamed answer at once, a stream's events as
soon as they are written.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """`HttpToolsProtocol` over a transport that sends a turn's writes together."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(_CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]


class _CoalescingTransport:
    """Buffers `write`s until the event loop's next turn (or `close`), then sends them in
    one write; everything else is the wrapped transport's."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(data)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def _flush(self) -> None:
        if not self._pending:
            return
        data = b"".join(self._pending)
        self._pending.clear()
        if not self._transport.is_closing():
            self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)
