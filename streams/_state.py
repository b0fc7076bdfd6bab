"""What the worker keeps per rollout in its changelog-backed table.

A `RolloutState` holds a `RolloutBuffer` per attempt and, beside it, each buffered event's
bytes in Avro single-object encoding: as they arrived when this build can read them back,
else encoded again (Confluent framing, another writer schema). The changelog
(`streams/_changelog.py`) writes those bytes, not a JSON dump of the models, and each
event's bytes once (`saved`, `segments`).

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

from collections.abc import Sequence
from dataclasses import dataclass, field

from fulmen.schemas import SINGLE_OBJECT_MAGIC, Event, SingleObjectCodec, current_schemas
from fulmen.streams._assembly import (
    AssemblyPolicy,
    RolloutBuffer,
    add,
    is_episode_input,
    is_expired,
    is_settled,
)

_CODEC = SingleObjectCodec()
_READABLE = frozenset(SINGLE_OBJECT_MAGIC + s.fingerprint for s in current_schemas().values())
"""Headers of the values `_CODEC` reads: a value under any other (Confluent framing, another
writer schema) is kept encoded again, so the changelog never holds bytes it cannot read."""
_HEADER_LEN = len(SINGLE_OBJECT_MAGIC) + 8
RELEASE_QUIET_S = 30.0
"""A written attempt keeps its event models this long after its last event: late events
mostly come sooner (a reward for the episode, or the rest of a backlog being drained), and
each one after the release costs a decode of the attempt's events."""


@dataclass
class RolloutState:
    """Every attempt of one rollout seen so far, with the bytes of its events."""

    attempts: dict[int, RolloutBuffer] = field(default_factory=dict)
    encoded: dict[int, list[bytes]] = field(default_factory=dict)
    released: set[int] = field(default_factory=set)
    """Attempts whose event models were dropped (`release`): their buffers hold bookkeeping
    only, and `encoded` the events."""
    saved: dict[int, int] = field(default_factory=dict)
    """Per attempt, how many of its `encoded` events the changelog holds."""
    segments: dict[int, int] = field(default_factory=dict)
    """Per attempt, how many changelog segments hold those."""

    @property
    def size_bytes(self) -> int:
        """The events' bytes, all attempts."""
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
        if value[:_HEADER_LEN] not in _READABLE:
            value = _CODEC.encode(event, topic="")
        self.encoded.setdefault(attempt, []).append(value)
        return True

    def has_seen(self, event: Event) -> bool:
        """Whether `event` is buffered already (by its event id, in its attempt)."""
        buffer = self.attempts.get(event.meta.attempt)
        return buffer is not None and event.meta.event_id in buffer.seen

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

    def age(self, policy: AssemblyPolicy, *, now: float) -> list[int]:
        """Release the attempts written and quiet for `RELEASE_QUIET_S` (`release_quiet`);
        the attempts expired at `now` (`is_expired`), for the caller to forget."""
        self.release_quiet(quiet_s=RELEASE_QUIET_S, now=now)
        return [a for a, b in self.attempts.items() if is_expired(b, policy, now=now)]

    def forget(self, attempt: int) -> None:
        """Drop `attempt` (its changelog segments are the table's to delete first)."""
        del self.attempts[attempt]
        for kept in (self.encoded, self.saved, self.segments):
            kept.pop(attempt, None)
        self.released.discard(attempt)

    def _revive(self, attempt: int) -> None:
        """Rebuild the released attempt's models from its bytes."""
        self.released.discard(attempt)
        restore_encoded(self, self.attempts[attempt], self.encoded.pop(attempt, []))


def restore_encoded(state: RolloutState, saved: RolloutBuffer, values: list[bytes]) -> None:
    """`restore` from the events' bytes."""
    restore(state, saved, [(_CODEC.decode(value, topic=""), value) for value in values])


def restore(
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
