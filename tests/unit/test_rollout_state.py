"""The worker's per-rollout state and its changelog records."""

from __future__ import annotations

import pytest

from fulmen.schemas import Reward, SingleObjectCodec
from fulmen.streams import (
    AssemblyPolicy,
    RolloutState,
    assemble,
    is_due,
)
from tests.support.events import in_attempt, meta, rollout

CODEC = SingleObjectCodec()


def _state() -> RolloutState:
    state = RolloutState()
    second = [in_attempt(event, 2) for event in rollout("r1", calls=1)]
    for event in rollout("r1", calls=2) + second:
        assert state.add(event, CODEC.encode(event, topic=""), now=100.0)
    return state


def test_a_released_attempt_keeps_bookkeeping_and_bytes_and_drops_its_models() -> None:
    state = _state()
    assemble(state.attempts[1], AssemblyPolicy(), now=150.0)
    seen, size = set(state.attempts[1].seen), state.size_bytes
    state.release(1)
    buffer = state.attempts[1]
    assert (buffer.spans, buffer.rewards, buffer.started, buffer.finished) == ([], [], None, None)
    assert buffer.seen == seen
    assert buffer.revision == 0
    assert state.size_bytes == size
    assert not is_due(buffer, AssemblyPolicy(), now=1e9), "nothing new: never due again"


def test_a_late_event_revives_a_released_attempt_into_its_next_revision() -> None:
    state, policy = _state(), AssemblyPolicy(grace_s=5.0)
    first = assemble(state.attempts[1], policy, now=150.0)
    duplicate = state.attempts[1].spans[0]
    state.release(1)
    assert not state.add(duplicate, CODEC.encode(duplicate, topic=""), now=160.0)
    assert state.released == {1}, "a duplicate revives nothing"
    late = Reward(meta=meta("r1", 900), value=0.25)
    assert state.add(late, CODEC.encode(late, topic=""), now=160.0)
    assert state.released == set()
    buffer = state.attempts[1]
    assert is_due(buffer, policy, now=170.0)
    second = assemble(buffer, policy, now=170.0)
    assert second.row.revision == 1
    assert second.row.num_events == first.row.num_events + 1
    assert [t.span_id for t in second.triplets] == [t.span_id for t in first.triplets]
    assert second.row.rewards == {"reward": first.row.rewards["reward"] + 0.25}
    assert state.encoded[1][-1] == CODEC.encode(late, topic="")
    assert len(state.encoded[1]) == len(buffer.seen), "each event's bytes once"


def test_only_written_attempts_quiet_long_enough_are_released() -> None:
    state = _state()  # both attempts' last event at 100.0
    assemble(state.attempts[1], AssemblyPolicy(), now=150.0)
    state.release_quiet(quiet_s=30.0, now=120.0)
    assert state.released == set(), "attempt 1 was quiet 20 s only"
    state.release_quiet(quiet_s=30.0, now=131.0)
    assert state.released == {1}, "attempt 2 was never written: its models stay"
    assert state.attempts[2].spans


def test_forgetting_a_released_attempt_forgets_that_it_was_released() -> None:
    state = _state()
    assemble(state.attempts[1], AssemblyPolicy(), now=150.0)
    state.release(1)
    state.forget(1)
    assert state.released == set()
    assert set(state.attempts) == {2}


def test_duplicates_add_nothing_and_forgetting_drops_the_bytes() -> None:
    state = _state()
    size = state.size_bytes
    event = state.attempts[1].spans[0]
    assert not state.add(event, CODEC.encode(event, topic=""), now=300.0)
    assert state.size_bytes == size
    state.forget(2)
    assert set(state.attempts) == set(state.encoded) == {1}


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(b"\x00\x00\x00\x00\x07body", id="Confluent-framed"),
        pytest.param(b"\xc3\x01" + bytes(8) + b"body", id="another writer schema"),
    ],
)
def test_events_this_build_cannot_read_back_are_kept_reencoded(value: bytes) -> None:
    state = RolloutState()
    (started, *_) = rollout("r2", calls=1)
    state.add(started, value, now=1.0)
    assert state.encoded[1] == [CODEC.encode(started, topic="")]


def _events(state: RolloutState) -> list[object]:
    found: list[object] = []
    for buffer in state.attempts.values():
        found += [e for e in (buffer.started, buffer.finished) if e is not None]
        found += [*buffer.spans, *buffer.rewards]
    return found
