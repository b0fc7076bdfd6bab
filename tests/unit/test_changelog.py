"""The buffer table's changelog records: headers and segments, what compaction keeps of them,
and the states recovery folds back."""

from __future__ import annotations

import struct

import pytest
from pydantic import BaseModel

from fulmen.schemas import DecodeError
from fulmen.streams import AssemblyPolicy, RolloutBuffer, RolloutState, assemble
from fulmen.streams._changelog import (
    Header,
    Segment,
    dump_record,
    load_record,
    new_segments,
    rollout_key,
    segment_key,
    segment_keys,
)
from fulmen.streams._rollout_table import input_partition
from tests.support.events import in_attempt, llm_span, rollout
from tests.support.states import Log, add_encoded, next_episodes, recover


def _save(log: Log, key: bytes, state: RolloutState, **limits: int) -> None:
    """What `RolloutTable.save` sends: the new segments, then the header."""
    log += [(found, dump_record(segment)) for found, segment in new_segments(key, state, **limits)]
    log.append((key, dump_record(state)))


def test_a_state_saved_in_parts_recovers_whole() -> None:
    key, state, log = b"r1", RolloutState(), []
    events = rollout("r1", calls=4)
    second = [in_attempt(event, 2) for event in rollout("r1", calls=1)]
    add_encoded(state, events[:3])
    _save(log, key, state)
    add_encoded(state, events[3:] + second)
    assemble(state.attempts[1], AssemblyPolicy(), now=150.0)  # revision 0 written
    state.attempts[1].last_event_at = 123.5
    _save(log, key, state)

    data, orphans = recover(log)
    assert set(data) == {key}
    assert orphans == []
    loaded = data[key]
    assert loaded.encoded == state.encoded
    assert loaded.attempts[2] == state.attempts[2]
    assert loaded.attempts[1].seen == state.attempts[1].seen
    assert (loaded.attempts[1].revision, loaded.attempts[1].last_event_at) == (0, 123.5)
    assert loaded.released == {1}, "a written attempt loads without its models"
    assert (loaded.saved, loaded.segments) == (state.saved, state.segments)
    state.release(1)
    assert next_episodes(loaded) == next_episodes(state)


@pytest.mark.parametrize("length", [10, 100, 400])
def test_a_long_rollout_writes_each_event_once(length: int) -> None:
    """One event a batch, a write each: the bytes written grow with the rollout's length,
    not with its square (the whole state each time wrote length²/2 events)."""
    key, state, log = b"long", RolloutState(), []
    for sequence in range(length):
        add_encoded(state, [llm_span("long", sequence, payload=300)])
        _save(log, key, state)
    written = sum(len(value or b"") for _, value in log)
    assert written < state.size_bytes + length * 300, "events once, plus a header per write"
    assert max(len(value or b"") for key_, value in log if key_ == key) < 300
    data, _ = recover(log)
    assert data[key].encoded == state.encoded


def test_a_segment_stops_at_its_size_and_a_larger_event_is_alone() -> None:
    state = RolloutState()
    small = [llm_span("r", sequence, payload=100) for sequence in range(6)]
    add_encoded(state, [*small[:3], llm_span("r", 10, payload=5_000), *small[3:]])
    sizes = [len(value) for value in state.encoded[1]]
    segments = [segment for _, segment in new_segments(b"r", state, max_bytes=3 * sizes[0])]
    assert [len(segment.values) for segment in segments] == [3, 1, 3]
    assert [v for segment in segments for v in segment.values] == state.encoded[1]
    assert new_segments(b"r", state) == [], "nothing new since"


def test_forgetting_an_attempt_deletes_its_segments() -> None:
    key, state, log = b"r1", RolloutState(), []
    add_encoded(state, rollout("r1", calls=2) + [in_attempt(e, 2) for e in rollout("r1", calls=1)])
    _save(log, key, state, max_bytes=1)  # a segment per event
    doomed = segment_keys(key, state, 1)
    assert len(doomed) == len(state.encoded[1])
    log += [(found, None) for found in doomed]  # what `RolloutTable.forget` sends
    state.forget(1)
    _save(log, key, state)
    data, orphans = recover(log)
    assert orphans == []
    assert set(data) == {key}
    assert set(data[key].attempts) == {2}
    assert data[key].encoded == state.encoded


def test_segments_no_header_counts_are_orphans() -> None:
    key, state, log = b"r1", RolloutState(), []
    add_encoded(state, rollout("r1", calls=1))
    _save(log, key, state)
    late = llm_span("r1", 50)
    add_encoded(state, [late])
    log += [(k, dump_record(s)) for k, s in new_segments(key, state)]  # died before the header
    data, orphans = recover(log)
    assert orphans == [segment_key(key, 1, 1)]
    assert set(data) == {key}, "segments are taken out of the table"
    assert late.meta.event_id not in data[key].attempts[1].seen, "read again from the inputs"


def test_a_missing_segment_loses_only_its_events_and_numbering_goes_on() -> None:
    key, state, log = b"r1", RolloutState(), []
    events = rollout("r1", calls=2)
    add_encoded(state, events[:2])
    _save(log, key, state)
    add_encoded(state, events[2:])
    _save(log, key, state)
    log = [(k, v) for k, v in log if k != segment_key(key, 1, 0)]
    data, _ = recover(log)
    loaded = data[key]
    assert loaded.encoded[1] == state.encoded[1][2:]
    assert loaded.segments == {1: 2}
    add_encoded(loaded, [llm_span("r1", 60)])
    assert [k for k, _ in new_segments(key, loaded)] == [segment_key(key, 1, 2)]


def test_a_header_is_written_only_after_its_segments() -> None:
    state = RolloutState()
    add_encoded(state, rollout("r1", calls=1))
    with pytest.raises(AssertionError, match="after its attempts' segments"):
        dump_record(state)
    with pytest.raises(TypeError):
        dump_record(Header([]))


def test_a_header_record_is_small_and_a_segment_the_events_plus_little() -> None:
    key, state = b"r1", RolloutState()
    add_encoded(state, rollout("r1", calls=3))
    (_, segment), *rest = new_segments(key, state)
    assert rest == []
    record = dump_record(segment)
    assert state.size_bytes < len(record) < state.size_bytes + 100
    assert isinstance(load_record(record), Segment)
    header = dump_record(state)
    assert len(header) < 300
    assert isinstance(load_record(header), Header)


def test_truncated_records_are_refused() -> None:
    key, state = b"r1", RolloutState()
    add_encoded(state, rollout("r1", calls=1))
    (_, segment), *_ = new_segments(key, state)
    for record in (dump_record(segment), dump_record(state)):
        with pytest.raises(DecodeError):
            load_record(record[:-3])


def test_segment_keys_go_where_their_rollout_goes() -> None:
    for rollout_id in ["r1", "ünïcode-rollout", "a" * 300]:
        key = rollout_id.encode()
        found = segment_key(key, 12, 34)
        assert rollout_key(found) == rollout_key(key) == key
        assert input_partition(rollout_key(found), 4) == input_partition(key, 4)


def _whole_record(state: RolloutState) -> bytes:
    """A record of the `FRS1` format: per attempt its header and all its events."""
    length, parts = struct.Struct("<I"), [b"FRS1"]
    fields = {"rollout_id", "attempt", "last_event_at", "revision", "changed_since_write"}
    for attempt, buffer in state.attempts.items():
        header = buffer.model_dump_json(include=fields).encode()
        events = state.encoded[attempt]
        parts += [length.pack(len(header)), header, length.pack(len(events))]
        parts += [part for value in events for part in (length.pack(len(value)), value)]
    return b"".join(parts)


class _OldState(BaseModel):
    attempts: dict[int, RolloutBuffer]


@pytest.mark.parametrize("old_format", ["FRS1", "JSON"])
def test_records_of_earlier_formats_load_and_move_to_segments(old_format: str) -> None:
    key, state = b"r1", RolloutState()
    add_encoded(state, rollout("r1", calls=2))
    state.attempts[1].revision = 3
    record = (
        _whole_record(state)
        if old_format == "FRS1"
        else _OldState(attempts=state.attempts).model_dump_json().encode()
    )
    data, _ = recover([(key, record)])
    loaded = data[key]
    assert isinstance(loaded, RolloutState)
    assert loaded.attempts[1].revision == 3
    assert loaded.attempts[1].seen == state.attempts[1].seen
    assert loaded.size_bytes == state.size_bytes
    assert next_episodes(loaded) == next_episodes(state)
    log: Log = [(key, record)]
    _save(log, key, loaded)
    assert len(log) == 3, "all its events in a segment, then the header"
    again, _ = recover(log)
    assert sorted(again[key].encoded[1]) == sorted(state.encoded[1]), "JSON kept no order"
