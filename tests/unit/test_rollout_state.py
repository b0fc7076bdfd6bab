"""The worker's per-rollout state and its changelog records."""

from __future__ import annotations

from pydantic import BaseModel

from fulmen.schemas import Event, SingleObjectCodec
from fulmen.streams import (
    AssemblyPolicy,
    RolloutBuffer,
    RolloutState,
    assemble,
    dump_state,
    load_state,
)
from tests.support.events import rollout

CODEC = SingleObjectCodec()


def _state() -> RolloutState:
    state = RolloutState()
    second = [_in_attempt(event, 2) for event in rollout("r1", calls=1)]
    for event in rollout("r1", calls=2) + second:
        assert state.add(event, CODEC.encode(event, topic=""), now=100.0)
    return state


def _in_attempt(event: Event, attempt: int) -> Event:
    return event.model_copy(update={"meta": event.meta.model_copy(update={"attempt": attempt})})


def _assembled(state: RolloutState) -> list[tuple[object, ...]]:
    return [
        (a, assemble(b.model_copy(deep=True), AssemblyPolicy(), now=200.0))
        for a, b in sorted(state.attempts.items())
    ]


def test_a_record_round_trips_buffers_bookkeeping_and_bytes() -> None:
    state = _state()
    assemble(state.attempts[1], AssemblyPolicy(), now=150.0)  # revision 0 written
    state.attempts[1].last_event_at = 123.5
    loaded = load_state(dump_state(state))
    assert loaded.attempts == state.attempts
    assert loaded.encoded == state.encoded
    assert loaded.attempts[1].revision == 0
    assert not loaded.attempts[1].changed_since_write
    assert _assembled(loaded) == _assembled(state)


def test_the_record_is_the_events_bytes_plus_little() -> None:
    state = _state()
    record = dump_state(state)
    assert state.size_bytes == sum(len(CODEC.encode(e, topic="")) for e in _events(state))
    assert state.size_bytes < len(record) < state.size_bytes + 1_000


def test_duplicates_add_nothing_and_forgetting_drops_the_bytes() -> None:
    state = _state()
    size = state.size_bytes
    event = state.attempts[1].spans[0]
    assert not state.add(event, CODEC.encode(event, topic=""), now=300.0)
    assert state.size_bytes == size
    state.forget(2)
    assert set(state.attempts) == set(state.encoded) == {1}


def test_events_not_single_object_framed_are_kept_reencoded() -> None:
    state = RolloutState()
    (started, *_) = rollout("r2", calls=1)
    confluent_framed = b"\x00\x00\x00\x00\x07" + b"body"
    state.add(started, confluent_framed, now=1.0)
    assert state.encoded[1] == [CODEC.encode(started, topic="")]


class _OldState(BaseModel):
    attempts: dict[int, RolloutBuffer]


def test_a_record_of_the_earlier_json_format_still_loads() -> None:
    state = _state()
    state.attempts[2].revision = 3
    old = _OldState(attempts=state.attempts).model_dump_json().encode()
    loaded = load_state(old)
    assert loaded.attempts[2].revision == 3
    assert loaded.attempts[1].seen == state.attempts[1].seen
    assert _assembled(loaded) == _assembled(state)
    assert loaded.size_bytes == state.size_bytes


def _events(state: RolloutState) -> list[object]:
    found: list[object] = []
    for buffer in state.attempts.values():
        found += [e for e in (buffer.started, buffer.finished) if e is not None]
        found += [*buffer.spans, *buffer.rewards]
    return found
