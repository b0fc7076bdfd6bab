"""The buffer table's changelog: each event's bytes written once, whatever a rollout's length.

A rollout's state changes a batch at a time. Writing the whole state at each change, as the
first format (`FRS1`) did, makes a rollout of L events spread over B batches write up to
B x L events: quadratic in its length. A change writes two kinds of records instead, keyed so
that compaction keeps what recovery needs:

- a *segment* per attempt with new events, keyed `<rollout id> 0xFF <attempt>.<index>`: the
  events added since the attempt's last write, in order, at most `SEGMENT_BYTES` of them (a
  larger event alone);
- the *header*, keyed by the rollout id: per attempt its bookkeeping and how many segments
  hold its events. A few hundred bytes, whatever the rollout's length.

Recovery (Faust reading the changelog back into the table) leaves headers and segments side
by side; `fold_all` puts each attempt's segments back into its state and takes them out of
the table. A segment goes out before its header, to the same partition (`rollout_key` is
what partitions a key), so a header read back finds every segment it counts unless the
worker died between the two sends; the events of such a segment were not committed, and are
read again from the inputs. Forgetting an attempt deletes its segments (tombstones).

A rollout id is UTF-8, which never holds the byte 0xFF: it ends the id in a segment key.
Records of the earlier formats (`FRS1`, the whole state; JSON models) still load, and their
events go to segments at the rollout's next write.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from faust.serializers import codecs
from pydantic import BaseModel

from fulmen.schemas import DecodeError, Event
from fulmen.streams._assembly import RolloutBuffer, is_settled
from fulmen.streams._state import RolloutState, restore, restore_encoded

SEGMENT_BYTES = 1 << 20
"""A segment's events stop at this size (the worker's producer batch)."""
_SEPARATOR = b"\xff"
_HEADER = b"FRS2"
_SEGMENT = b"FRG1"
_WHOLE = b"FRS1"
_LENGTH = struct.Struct("<I")
_HEADER_FIELDS = {"rollout_id", "attempt", "last_event_at", "revision", "changed_since_write"}


@dataclass(frozen=True)
class Segment:
    """Events of one attempt added between two writes: their bytes, in order."""

    values: list[bytes]


@dataclass(frozen=True)
class Header:
    """A header record read back: each attempt's bookkeeping and its number of segments."""

    attempts: list[tuple[RolloutBuffer, int]]


Record = RolloutState | Header | Segment
"""A changelog value as the table holds it: a state (written by this worker, or read back in
an earlier format), or a header and segments read back and not folded yet."""


def segment_key(key: bytes, attempt: int, index: int) -> bytes:
    return key + _SEPARATOR + f"{attempt}.{index}".encode()


def rollout_key(key: bytes) -> bytes:
    """The rollout id of a header or segment key: what partitions it."""
    return key.partition(_SEPARATOR)[0]


def segment_keys(key: bytes, state: RolloutState, attempt: int) -> list[bytes]:
    """The keys of `attempt`'s segments."""
    return [segment_key(key, attempt, index) for index in range(state.segments.get(attempt, 0))]


def new_segments(
    key: bytes, state: RolloutState, *, max_bytes: int = SEGMENT_BYTES
) -> list[tuple[bytes, Segment]]:
    """The segments of the events the changelog does not hold yet, counted as held."""
    found: list[tuple[bytes, Segment]] = []
    for attempt, values in state.encoded.items():
        start = state.saved.get(attempt, 0)
        for chunk in _chunks(values[start:], max_bytes):
            index = state.segments.get(attempt, 0)
            found.append((segment_key(key, attempt, index), Segment(chunk)))
            state.segments[attempt] = index + 1
        state.saved[attempt] = len(values)
    return found


def dump_record(value: Record) -> bytes:
    """A segment's record, or a state's header record (its events must be in segments:
    `new_segments` first)."""
    if isinstance(value, Segment):
        return b"".join([_SEGMENT, *_framed(value.values)])
    if isinstance(value, Header):
        raise TypeError("a header is read back, never written: write its folded state")
    parts = [_HEADER]
    for attempt, buffer in value.attempts.items():
        unsaved = len(value.encoded.get(attempt, [])) - value.saved.get(attempt, 0)
        assert unsaved == 0, "a header is written after its attempts' segments"
        header = buffer.model_dump_json(include=_HEADER_FIELDS).encode()
        parts += [_LENGTH.pack(len(header)), header, _LENGTH.pack(value.segments.get(attempt, 0))]
    return b"".join(parts)


def load_record(data: bytes) -> Record:
    """The value of a changelog record, in any format Fulmen wrote."""
    if data.startswith(_SEGMENT):
        reader = _Reader(data, len(_SEGMENT))
        return Segment([reader.chunk() for _ in range(reader.length())])
    if data.startswith(_HEADER):
        reader, attempts = _Reader(data, len(_HEADER)), []
        while not reader.done():
            saved = RolloutBuffer.model_validate_json(reader.chunk())
            attempts.append((saved, reader.length()))
        return Header(attempts)
    if data.startswith(_WHOLE):
        return _load_whole(data)
    return _load_json(data)


def fold_all(data: MutableMapping[bytes, Any]) -> list[bytes]:
    """Replace each header in `data` by its state, with its segments' events, and take the
    segments out of `data`. Returns the keys of segments no header counts (a worker died
    after sending them and before their header): the caller deletes them."""
    segments = {key: value for key, value in data.items() if isinstance(value, Segment)}
    headers = {key: value for key, value in data.items() if isinstance(value, Header)}
    for key in segments:
        del data[key]
    for key, header in headers.items():
        data[key] = fold(key, header, lambda found: segments.pop(found, None))
    return list(segments)


def fold(key: bytes, header: Header, take: Callable[[bytes], Segment | None]) -> RolloutState:
    """The state of a header, its events taken from its segments (`take(segment key)`)."""
    state = RolloutState()
    for saved, count in header.attempts:
        attempt, values = saved.attempt, []
        for index in range(count):
            segment = take(segment_key(key, attempt, index))
            values += segment.values if segment is not None else []
        restore_encoded(state, saved, values)
        state.saved[attempt], state.segments[attempt] = len(values), count
        if is_settled(saved):
            state.release(attempt)
    return state


def _chunks(values: list[bytes], max_bytes: int) -> list[list[bytes]]:
    chunks: list[list[bytes]] = []
    size = max_bytes
    for value in values:
        if size + len(value) > max_bytes:
            chunks.append([])
            size = 0
        chunks[-1].append(value)
        size += len(value)
    return chunks


def _framed(values: list[bytes]) -> list[bytes]:
    parts = [_LENGTH.pack(len(values))]
    for value in values:
        parts += [_LENGTH.pack(len(value)), value]
    return parts


class _Reader:
    def __init__(self, data: bytes, position: int) -> None:
        self._data, self._position = data, position

    def done(self) -> bool:
        return self._position >= len(self._data)

    def length(self) -> int:
        if self._position + _LENGTH.size > len(self._data):
            raise DecodeError("truncated", "a changelog record ends mid-length")
        (value,) = _LENGTH.unpack_from(self._data, self._position)
        self._position += _LENGTH.size
        return int(value)

    def chunk(self) -> bytes:
        size = self.length()
        start, self._position = self._position, self._position + size
        if self._position > len(self._data):
            raise DecodeError("truncated", "a changelog record ends mid-chunk")
        return self._data[start : self._position]


def _load_whole(data: bytes) -> RolloutState:
    """An `FRS1` record: per attempt its header and all its events."""
    state, reader = RolloutState(), _Reader(data, len(_WHOLE))
    while not reader.done():
        saved = RolloutBuffer.model_validate_json(reader.chunk())
        restore_encoded(state, saved, [reader.chunk() for _ in range(reader.length())])
        if is_settled(saved):
            state.release(saved.attempt)
    return state


class _JsonState(BaseModel):
    attempts: dict[int, RolloutBuffer]


def _load_json(data: bytes) -> RolloutState:
    """A record of the first format: models as JSON."""
    state = RolloutState()
    for old in _JsonState.model_validate_json(data).attempts.values():
        events: list[Event] = [*old.spans, *old.rewards]
        events += [e for e in (old.started, old.finished) if e is not None]
        restore(state, old, [(event, b"") for event in events])  # encoded again by `add`
    return state


class RecordCodec(codecs.Codec):
    """Faust's value codec for the rollout table."""

    def _dumps(self, obj: Any) -> bytes:
        return dump_record(obj)

    def _loads(self, s: bytes) -> Any:
        return load_record(s)
