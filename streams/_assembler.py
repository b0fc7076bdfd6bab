"""Buffers of many rollouts in memory: the embedded runner's episode table, the stream
worker's `RolloutState`s in a dict."""

from __future__ import annotations

import math

import pyarrow as pa

from fulmen.schemas import Event
from fulmen.store import TABLES
from fulmen.streams._assembly import (
    AssemblyPolicy,
    Episode,
    assemble,
    is_due,
    is_episode_input,
)
from fulmen.streams._state import RolloutState


class EpisodeAssembler:
    """Keeps a `RolloutState` per rollout; `collect` assembles the due attempts, releases the
    models of those written and quiet (`RELEASE_QUIET_S`) and forgets the expired ones."""

    def __init__(self, policy: AssemblyPolicy | None = None) -> None:
        self.policy = policy or AssemblyPolicy()
        self._states: dict[str, RolloutState] = {}
        self.duplicates = 0
        self.forgotten = 0

    def add(self, event: Event, *, now: float, value: bytes = b"") -> bool:
        """Buffer `event`, whose message value was `value` (kept for when its models are
        released; without it, the event is encoded again); False for a duplicate of an event
        still buffered. Events that are no episode's input (`is_episode_input`) are refused
        (False, not counted)."""
        if not is_episode_input(event):
            return False
        state = self._states.setdefault(event.meta.rollout_id, RolloutState())
        added = state.add(event, value, now=now)
        self.duplicates += not added
        return added

    def is_new(self, event: Event) -> bool:
        """Whether `event` is not a duplicate of one still buffered."""
        state = self._states.get(event.meta.rollout_id)
        return state is None or not state.has_seen(event)

    def collect(self, *, now: float, flush: bool = False) -> list[Episode]:
        """Assemble the buffers that are due at `now` (all that have anything new, when
        `flush`: the end of a run, unfinished rollouts becoming `timeout` episodes)."""
        due_at = math.inf if flush else now
        episodes: list[Episode] = []
        for rollout_id, state in list(self._states.items()):
            episodes += [
                assemble(buffer, self.policy, now=now)
                for buffer in state.attempts.values()
                if is_due(buffer, self.policy, now=due_at)
            ]
            expired = state.age(self.policy, now=now)
            for attempt in expired:
                state.forget(attempt)
            self.forgotten += len(expired)
            if not state.attempts:
                del self._states[rollout_id]
        return episodes

    def __len__(self) -> int:
        return sum(len(state.attempts) for state in self._states.values())


def episodes_table(episodes: list[Episode]) -> pa.Table:
    """Episode rows as an Arrow batch for the store's `episodes` table."""
    rows = [vars(episode.row) for episode in episodes]  # asdict would deep-copy every list
    return pa.Table.from_pylist(rows, schema=TABLES["episodes"])


def triplets_table(episodes: list[Episode]) -> pa.Table:
    """The episodes' triplets as an Arrow batch for the store's `triplets` table."""
    rows = [vars(t) for episode in episodes for t in episode.triplets]
    return pa.Table.from_pylist(rows, schema=TABLES["triplets"])
