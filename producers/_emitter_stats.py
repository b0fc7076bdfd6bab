"""What the emitter counts: every event it was given, by where it is or how it was lost."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EmitterStats:
    """Counters since the emitter started; every event `emit` was given ends up in exactly
    one of `delivered`, `pending`, `queued`, the spill, `oversize`, `failed` or `dropped`.

    `emitted` counts events `emit` accepted. `delivered` excludes what is still `pending` in
    the transport; `queued` is what the sender has not taken yet. `spilled` counts appends
    to the spill (with `write_ahead`, every event) and `resent` what was sent from it;
    `retried` counts delivery failures that were spilled to be sent again (a broker outage,
    a timeout). Lost events, each with a warning in the `fulmen.producers` log: `oversize`,
    refused because encoded they exceed `max_event_bytes`; `failed`, which could not be
    encoded, which the transport refused, or which the broker refused for good (too large,
    invalid, not authorized); `dropped`, for which there was no room (queue full, emitter
    closed, spill over budget or not writable). An event the redactor failed on is `failed`.
    """

    emitted: int
    delivered: int
    pending: int
    queued: int
    spilled: int
    resent: int
    retried: int
    failed: int
    oversize: int
    dropped: int
    spill_bytes: int
    redacted: dict[str, int]
    """Texts the redactor changed, by kind (`email`, `card` …), and LLM calls whose token
    ids it dropped (`token_ids`); empty without a redactor (docs/producers.md#redaction)."""

    @property
    def lost(self) -> int:
        """Events that will never be delivered: `oversize + failed + dropped`."""
        return self.oversize + self.failed + self.dropped
