"""What the worker keeps per rollout in its changelog-backed table, and its wire format.

A `RolloutState` holds a `RolloutBuffer` per attempt and, beside it, each buffered event's
bytes in Avro single-object encoding. The changelog record is those bytes, not a JSON dump
of the models: it is as large as the events themselves (JSON of token ids and logprobs is
two to three times larger), so `size_bytes` bounds it, and writing it copies bytes instead
of serializing models. Layout of a record: `FRS1`, then per attempt a length-prefixed JSON
header (the buffer's bookkeeping) and the length-prefixed events in the order they were added.

Once an attempt's episode is written and quiet a while, its event models are `release`d
(`release_quiet`): the buffer keeps its bookkeeping (seen event ids, revision, last event
time) and the bytes, and a late event rebuilds the models from those bytes before it is
added. A worker keeps written buffers for
`retention_s` (an hour by default) in case a late reward revises them; as models, each
buffered event is a dozen objects the cyclic garbage collector visits in every full
collection (a full collection over the bench's 16,000 retained rollouts took about a second),
as bytes it is none.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from faust.serializers import codecs
from pydantic import BaseModel

from fulmen.schemas import SINGLE_OBJECT_MAGIC, DecodeError, Event, SingleObjectCodec
from fulmen.streams._assembly import RolloutBuffer, add, is_episode_input, is_settled

_MAGIC = b"FRS1"
_LENGTH = struct.Struct("<I")
_HEADER_FIELDS = {"rollout_id", "attempt", "last_event_at", "revision", "changed_since_write"}
_CODEC = SingleObjectCodec()


@dataclass
class RolloutState:
    """Every attempt of one rollout seen so far, with the bytes of its events."""

    attempts: dict[int, RolloutBuffer] = field(default_factory=dict)
    encoded: dict[int, list[bytes]] = field(default_factory=dict)
    released: set[int] = field(default_factory=set)
    """Attempts whose event models were dropped (`release`): their buffers hold bookkeeping
    only, and `encoded` the events."""

    @property
    def size_bytes(self) -> int:
        """The events' bytes: what the changelog record holds, less a few hundred bytes."""
        return sum(len(value) for values in self.encoded.values() for value in values)

    def add(self, event: Event, value: bytes, *, now: float) -> bool:
        """Buffer `event`, whose message value was `value`; False for a duplicate or an event
        that is no episode's input (`is_episode_input`: nothing is buffered for it)."""
        if not is_episode_input(event):
            return False
        attempt = event.meta.attempt
        if attempt in self.released and event.meta.event_id not in self.attempts[attempt].seen:
            self._revive(attempt)
        buffer = self.attempts.get(attempt)
        if buffer is None:
            buffer = RolloutBuffer(rollout_id=event.meta.rollout_id, attempt=attempt)
            self.attempts[attempt] = buffer
        if not add(buffer, event, now=now):
            return False
        if not value.startswith(SINGLE_OBJECT_MAGIC):  # e.g. Confluent-framed: needs a registry
            value = _CODEC.encode(event, topic="")
        self.encoded.setdefault(attempt, []).append(value)
        return True

    def release(self, attempt: int) -> None:
        """Drop the event models of `attempt`, which must be settled (`is_settled`: nothing
        reads them until a later event makes it due again). The buffer keeps what `is_due`,
        `is_expired`, duplicate checks and the changelog need."""
        buffer = self.attempts[attempt]
        assert is_settled(buffer), "release() only after a write with no news since"
        buffer.spans, buffer.rewards, buffer.started, buffer.finished = [], [], None, None
        self.released.add(attempt)

    def release_quiet(self, *, quiet_s: float, now: float) -> None:
        """Release the attempts written, unchanged since, and without an event for
        `quiet_s` (`now` and `last_event_at` on the same clock)."""
        for attempt, buffer in self.attempts.items():
            quiet = now - buffer.last_event_at >= quiet_s
            if quiet and attempt not in self.released and is_settled(buffer):
                self.release(attempt)

    def forget(self, attempt: int) -> None:
        del self.attempts[attempt]
        self.encoded.pop(attempt, None)
        self.released.discard(attempt)

    def _revive(self, attempt: int) -> None:
        """Rebuild the released attempt's models from its bytes."""
        self.released.discard(attempt)
        _restore_encoded(self, self.attempts[attempt], self.encoded.pop(attempt, []))


def dump_state(state: RolloutState) -> bytes:
    """The changelog record of `state`."""
    parts = [_MAGIC]
    for attempt, buffer in state.attempts.items():
        header = buffer.model_dump_json(include=_HEADER_FIELDS).encode()
        events = state.encoded.get(attempt, [])
        parts += [_LENGTH.pack(len(header)), header, _LENGTH.pack(len(events))]
        for value in events:
            parts += [_LENGTH.pack(len(value)), value]
    return b"".join(parts)


def load_state(data: bytes) -> RolloutState:
    """The state a changelog record holds (also a record of the earlier JSON format)."""
    if not data.startswith(_MAGIC):
        return _from_json(data)
    state, reader = RolloutState(), _Reader(data, len(_MAGIC))
    while not reader.done():
        saved = RolloutBuffer.model_validate_json(reader.chunk())
        _restore_encoded(state, saved, [reader.chunk() for _ in range(reader.length())])
        if is_settled(saved):
            state.release(saved.attempt)
    return state


def _restore_encoded(state: RolloutState, saved: RolloutBuffer, values: list[bytes]) -> None:
    """`_restore` from the events' bytes."""
    _restore(state, saved, [(_CODEC.decode(value, topic=""), value) for value in values])


def _restore(
    state: RolloutState, saved: RolloutBuffer, events: Sequence[tuple[Event, bytes]]
) -> None:
    """Add an attempt's events (with their bytes) to `state` again, then put back the
    bookkeeping that adding them does not reproduce."""
    buffer = RolloutBuffer(rollout_id=saved.rollout_id, attempt=saved.attempt)
    state.attempts[saved.attempt] = buffer
    for event, value in events:
        state.add(event, value, now=0.0)
    buffer.last_event_at = saved.last_event_at
    buffer.revision = saved.revision
    buffer.changed_since_write = saved.changed_since_write


class _Reader:
    def __init__(self, data: bytes, position: int) -> None:
        self._data, self._position = data, position

    def done(self) -> bool:
        return self._position >= len(self._data)

    def length(self) -> int:
        (value,) = _LENGTH.unpack_from(self._data, self._position)
        self._position += _LENGTH.size
        return int(value)

    def chunk(self) -> bytes:
        size = self.length()
        start, self._position = self._position, self._position + size
        if self._position > len(self._data):
            raise DecodeError("truncated", "a changelog record ends mid-chunk")
        return self._data[start : self._position]


class _JsonState(BaseModel):
    attempts: dict[int, RolloutBuffer]


def _from_json(data: bytes) -> RolloutState:
    """A record written by workers before the binary format: models as JSON."""
    state = RolloutState()
    for old in _JsonState.model_validate_json(data).attempts.values():
        events: list[Event] = [*old.spans, *old.rewards]
        events += [e for e in (old.started, old.finished) if e is not None]
        _restore(state, old, [(event, b"") for event in events])  # encoded again by `add`
    return state


class StateCodec(codecs.Codec):
    """Faust's value codec for the rollout table."""

    def _dumps(self, obj: Any) -> bytes:
        return dump_state(obj)

    def _loads(self, s: bytes) -> Any:
        return load_state(s)
