"""Buffers of many rollouts in memory: the embedded runner's episode table."""

from __future__ import annotations

import math

import pyarrow as pa

from fulmen.schemas import Event
from fulmen.store import TABLES
from fulmen.streams._assembly import (
    AssemblyPolicy,
    Episode,
    RolloutBuffer,
    add,
    assemble,
    is_due,
    is_episode_input,
    is_expired,
)


class EpisodeAssembler:
    """Keeps a `RolloutBuffer` per (rollout id, attempt); `collect` assembles the due ones
    and forgets the expired ones."""

    def __init__(self, policy: AssemblyPolicy | None = None) -> None:
        self.policy = policy or AssemblyPolicy()
        self._buffers: dict[tuple[str, int], RolloutBuffer] = {}
        self.duplicates = 0
        self.forgotten = 0

    def add(self, event: Event, *, now: float) -> bool:
        """Buffer `event`; False for a duplicate of an event still buffered. Events that are
        no episode's input (`is_episode_input`) are refused (False, not counted)."""
        if not is_episode_input(event):
            return False
        key = (event.meta.rollout_id, event.meta.attempt)
        buffer = self._buffers.get(key)
        if buffer is None:
            buffer = self._buffers[key] = RolloutBuffer(rollout_id=key[0], attempt=key[1])
        added = add(buffer, event, now=now)
        self.duplicates += not added
        return added

    def is_new(self, event: Event) -> bool:
        """Whether `event` is not a duplicate of one still buffered."""
        buffer = self._buffers.get((event.meta.rollout_id, event.meta.attempt))
        return buffer is None or event.meta.event_id not in buffer.seen

    def collect(self, *, now: float, flush: bool = False) -> list[Episode]:
        """Assemble the buffers that are due at `now` (all that have anything new, when
        `flush`: the end of a run, unfinished rollouts becoming `timeout` episodes)."""
        episodes = [
            assemble(buffer, self.policy, now=now)
            for buffer in self._buffers.values()
            if is_due(buffer, self.policy, now=math.inf if flush else now)
        ]
        expired = [k for k, b in self._buffers.items() if is_expired(b, self.policy, now=now)]
        for key in expired:
            del self._buffers[key]
        self.forgotten += len(expired)
        return episodes

    def __len__(self) -> int:
        return len(self._buffers)


def episodes_table(episodes: list[Episode]) -> pa.Table:
    """Episode rows as an Arrow batch for the store's `episodes` table."""
    rows = [vars(episode.row) for episode in episodes]  # asdict would deep-copy every list
    return pa.Table.from_pylist(rows, schema=TABLES["episodes"])


def triplets_table(episodes: list[Episode]) -> pa.Table:
    """The episodes' triplets as an Arrow batch for the store's `triplets` table."""
    rows = [vars(t) for episode in episodes for t in episode.triplets]
    return pa.Table.from_pylist(rows, schema=TABLES["triplets"])
