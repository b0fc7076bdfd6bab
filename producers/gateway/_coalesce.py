"""uvicorn's httptools protocol with each response's writes sent together.

uvicorn writes a response's status line and headers as soon as the app starts the response,
then its body: two sends. The first wakes the agent, which on a busy machine is scheduled
in between and reads the headers before the gateway has written the body; measured on this
project's 2 cores, that cost a non-streamed call about half a millisecond at the median
(docs/gateway.md). Here the writes made within one turn of the event loop leave as one
send: at the end of the turn, or as soon as the response is complete, so that a whole
non-streamed answer leaves at once, before whatever the app does after it (the call's
span), and a stream's events leave as soon as they are written.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """`HttpToolsProtocol` over a transport that sends a turn's writes together."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._coalescing = _CoalescingTransport(transport, self.loop)
        super().connection_made(self._coalescing)  # type: ignore[arg-type]

    def on_response_complete(self) -> None:
        self._coalescing.flush()
        super().on_response_complete()


class _CoalescingTransport:
    """Buffers `write`s until the event loop's next turn (or `flush`, `close`), then sends them in
    one write; everything else is the wrapped transport's."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def flush(self) -> None:
        """Send what was written so far."""
        if not self._pending:
            return
        data = b"".join(self._pending)
        self._pending.clear()
        if not self._transport.is_closing():
            self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)
