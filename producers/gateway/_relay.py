"""Relaying a streamed completion to the agent as it arrives, recording it on the side.

Each upstream read is passed on at once: unchanged when the gateway asked for nothing on
the agent's behalf, else event by event with those fields stripped (see `_rewrite.strip`).
Every chunk is also given to the call's record, so token ids and logprobs of streamed
responses are captured whole. The call's span is emitted when the relay closes — at the
end of the stream, when the upstream fails (the agent's connection is then broken, as it
would have been by the upstream), or when the agent goes away — and the call's in-flight
slot is released then.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from fulmen.producers.gateway._admission import GatewayStats
from fulmen.producers.gateway._record import CallRecord
from fulmen.producers.gateway._rewrite import Added, dumps_like, strip
from fulmen.producers.gateway._sse import DONE, SseDecoder, SseEvent
from fulmen.producers.gateway._upstream import UpstreamError, UpstreamResponse


class Relay:
    """One upstream stream on its way to the agent."""

    def __init__(
        self,
        upstream: UpstreamResponse,
        record: CallRecord | None,
        added: Added,
        *,
        stats: GatewayStats,
        on_close: Callable[[], None],
    ) -> None:
        self._upstream = upstream
        self._record = record
        self._added = added
        self._stats = stats
        self._on_close = on_close
        self._error: str | None = None
        self._ended = False
        self._closed = False

    async def chunks(self) -> AsyncIterator[bytes]:
        decoder = SseDecoder()
        try:
            async for received in self._upstream.chunks():
                events = decoder.feed(received)
                if not self._added.any:
                    for event in events:
                        self._observe(event)
                    yield received
                    continue
                relayed = b"".join(self._relayed(event) for event in events)
                if relayed:
                    yield relayed
        except UpstreamError as exc:
            self._error = str(exc)
            self._stats.upstream_errors += 1
            raise
        if self._added.any and decoder.pending:
            yield decoder.pending
        self._ended = True

    async def close(self) -> None:
        """Record the call, release the upstream connection and the in-flight slot (once)."""
        if self._closed:
            return
        self._closed = True
        if not self._ended and self._error is None:
            self._error = "the agent left before the end of the stream"
            self._stats.disconnects += 1
        try:
            if self._record is not None:
                self._record.finish(self._error)
        finally:
            self._upstream.close()
            self._on_close()

    def _relayed(self, event: SseEvent) -> bytes:
        data = self._observe(event)
        if data is None:
            return event.raw
        stripped = strip(data, self._added, chunk=True)
        return b"" if stripped is None else b"data: " + dumps_like(stripped, event.raw) + b"\n\n"

    def _observe(self, event: SseEvent) -> dict[str, object] | None:
        """Record a chunk; returns it parsed, or None for what is not a chunk ([DONE],
        comments, error events — an error event is the call's error)."""
        if event.data == DONE:
            # The stream is whole: an agent that closes the connection once it read [DONE]
            # (the openai client does) has not left early.
            self._ended = True
            return None
        if event.data is None:
            return None
        try:
            data = json.loads(event.data)
        except ValueError:
            return None
        if not isinstance(data, dict):
            return None
        if "error" in data and "choices" not in data:
            error = data["error"]
            message = error.get("message") if isinstance(error, dict) else error
            self._error = f"upstream stream error: {message}"
            self._stats.upstream_errors += 1
            return None
        if self._record is not None:
            self._record.chunk(data)
        return data


class RelayResponse(StreamingResponse):
    """A streaming response whose relay is closed whatever happens: the stream ended, the
    agent disconnected (even before the first byte), or sending failed."""

    def __init__(
        self, relay: Relay, *, status_code: int, headers: list[tuple[bytes, bytes]]
    ) -> None:
        super().__init__(relay.chunks(), status_code=status_code)
        self.raw_headers = headers
        self._relay = relay

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._relay.close()
