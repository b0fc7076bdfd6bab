"""Re-sending a spill segment: its messages go back to the transport in the order they were
spilled, however many calls that takes while the transport is full."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from fulmen.producers._spill import SpilledMessage
from fulmen.producers.transport import Transport, TransportFull


class SegmentDrain:
    """A sealed spill segment being re-sent. `sent` counts what the transport took; `failed`
    is set (by the emitter's delivery-failure listener) when any of it was not delivered,
    and the segment is then kept, to be re-sent whole."""

    def __init__(self, segment: Path, records: Iterator[SpilledMessage]) -> None:
        self.segment = segment
        self._records = records
        self._pushed_back: SpilledMessage | None = None
        self.sent = 0
        self.failed: str | None = None

    def send(self, transport: Transport, refused: Callable[[str], None]) -> bool:
        """Produce the rest of the segment, in order. False when the transport is full: the
        message it did not take is the first one the next call sends. A message the
        transport refuses for good is passed to `refused` (a reason) and skipped."""
        while (message := self._next()) is not None:
            try:
                transport.produce(message.topic, message.key, message.value)
            except TransportFull:
                self._pushed_back = message
                return False
            except Exception as exc:  # the transport refused this one message
                refused(f"the transport refused a spilled message for {message.topic}: {exc}")
                continue
            self.sent += 1
        return True

    def _next(self) -> SpilledMessage | None:
        if self._pushed_back is not None:
            message, self._pushed_back = self._pushed_back, None
            return message
        return next(self._records, None)
