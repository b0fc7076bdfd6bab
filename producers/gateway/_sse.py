"""Server-sent events split out of a byte stream as it arrives (chunk boundaries fall
anywhere), as OpenAI-compatible servers stream completions: `data: {json}` events, then
`data: [DONE]`."""

from __future__ import annotations

from dataclasses import dataclass

DONE = "[DONE]"


@dataclass(frozen=True, slots=True)
class SseEvent:
    """One event: its bytes (line endings normalised to `\\n`, the blank line included) and
    its data (the `data:` lines joined by `\\n`; None when it has none, e.g. a comment)."""

    raw: bytes
    data: str | None


class SseDecoder:
    """Feed bytes, get the events completed so far; `pending` is what is left over."""

    def __init__(self) -> None:
        self._buffer = b""

    @property
    def pending(self) -> bytes:
        return self._buffer

    def feed(self, chunk: bytes) -> list[SseEvent]:
        buffer = self._buffer + chunk
        if b"\r" in buffer:
            if buffer.endswith(b"\r"):  # maybe half of a \r\n: wait for the next byte
                self._buffer = buffer
                return []
            buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        events: list[SseEvent] = []
        start = 0
        while (end := buffer.find(b"\n\n", start)) != -1:
            raw = buffer[start : end + 2]
            events.append(SseEvent(raw, _data(raw)))
            start = end + 2
        self._buffer = buffer[start:]
        return events


def _data(raw: bytes) -> str | None:
    lines = [line[5:].removeprefix(b" ") for line in raw.split(b"\n") if line.startswith(b"data:")]
    return b"\n".join(lines).decode() if lines else None


def encode(data: str) -> bytes:
    """One `data:` event."""
    return b"data: " + data.encode() + b"\n\n"
