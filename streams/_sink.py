"""Writes into the LightningStore with exactly-once effect, whatever was replayed.

A stream stage that crashes re-reads everything after its last committed offset. Raw events
come back at the same offsets: the sink remembers, per table and partition, the highest
offset the store holds (asked of the store after every rebalance) and writes only what lies
beyond it. A table's offsets are those of one topic only because events of another kind
than their topic carries never get here (`decode_batch` makes them `wrong_topic` dead
letters): a reward read at offset 9,000 of the spans topic would otherwise hide the rewards
topic's offsets below 9,000. Episodes come back as buffers that may not know their last
revision was written: before writing, the sink asks the store for the latest revision of
each due rollout and `reconcile`s. Each insert also carries a deduplication token, so a
retried insert whose first try did land is dropped by ClickHouse.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from fulmen.schemas import Event
from fulmen.store import EVENT_TABLES, TABLES, LightningStore, Source
from fulmen.streams._assembler import episodes_table, triplets_table
from fulmen.streams._assembly import (
    AssemblyPolicy,
    Episode,
    RolloutBuffer,
    assemble,
    is_due,
    reconcile,
)
from fulmen.streams._intake import DeadLetter, Intake, dead_letters_table

_SOURCED: dict[type[Event], str] = {
    kind: table for kind, table in EVENT_TABLES.items() if "source_offset" in TABLES[table].names
}
"""Event types whose table records the Kafka offset each row came from."""


@dataclass(frozen=True)
class Assembled:
    """Due episodes: `new` ones to write, and `recovered` ones the store already holds
    (written before a restart), to be announced again but not written."""

    new: list[Episode]
    recovered: list[Episode]


class StoreSink:
    """The store side of a stream stage. Methods raise whatever the store raises; callers
    retry the same call with the same arguments until it succeeds."""

    def __init__(self, store: LightningStore) -> None:
        self.store = store
        self._written: dict[tuple[str, int], int] = {}
        self._dead_written: dict[tuple[str, int], int] = {}

    def forget_offsets(self) -> None:
        """Drop what is known of written offsets: after a rebalance another worker may have
        written the partitions this one gets back."""
        self._written.clear()
        self._dead_written.clear()

    def write_raw(self, intake: Intake) -> int:
        """Write the intake's events that the store does not hold yet; returns how many."""
        read = [
            (index, source, _SOURCED.get(type(event)))
            for index, (event, source) in enumerate(zip(intake.events, intake.sources, strict=True))
        ]
        self._learn_offsets({(table, p) for _, (p, _), table in read if table is not None})
        fresh = [
            (index, (partition, offset), table)
            for index, (partition, offset), table in read
            if table is None or offset > self._written[(table, partition)]
        ]
        if fresh:
            sources = [source for _, source, _ in fresh]
            self.store.write_events(
                [intake.events[index] for index, _, _ in fresh],
                fields=[intake.fields[index] for index, _, _ in fresh],
                sources=sources,
                dedup_token=_offsets_token(sources),
            )
        for _, (partition, offset), table in fresh:
            if table is not None:
                key = (table, partition)
                self._written[key] = max(self._written[key], offset)
        return len(fresh)

    def write_dead(self, dead: Sequence[DeadLetter]) -> int:
        """Record the dead letters the store does not hold yet (by topic, partition and
        offset, as raw events) in its `dead_letters` table; returns how many."""
        sources = {(d.message.topic, d.message.partition) for d in dead}
        unknown = sorted(sources - self._dead_written.keys())
        found = self.store.dead_letter_offsets(unknown)
        for source in unknown:
            self._dead_written[source] = found.get(source, -1)
        fresh: list[DeadLetter] = []
        reached = dict(self._dead_written)
        for d in dead:  # in read order: a message read again is at or below its partition's mark
            source = (d.message.topic, d.message.partition)
            if d.message.offset > reached[source]:
                fresh.append(d)
                reached[source] = d.message.offset
        if fresh:
            token = _digest(d.source for d in fresh)
            self.store.insert(
                "dead_letters", dead_letters_table(fresh), dedup_token=f"dead_letters/{token}"
            )
        self._dead_written = reached
        return len(fresh)

    def assemble_due(
        self,
        buffers: Iterable[RolloutBuffer],
        policy: AssemblyPolicy,
        *,
        now: float,
    ) -> Assembled:
        """Assemble the buffers due at `now`, reconciled with the store's revisions."""
        due = [buffer for buffer in buffers if is_due(buffer, policy, now=now)]
        written = self.store.written_revisions([(b.rollout_id, b.attempt) for b in due])
        new: list[Episode] = []
        recovered: list[Episode] = []
        for buffer in due:
            held = reconcile(buffer, written.get((buffer.rollout_id, buffer.attempt)))
            (recovered if held else new).append(assemble(buffer, policy, now=now))
        return Assembled(new=new, recovered=recovered)

    def write_episodes(self, episodes: Sequence[Episode]) -> int:
        """Write episodes and their triplets; returns how many triplets."""
        if not episodes:
            return 0
        token = _digest(f"{e.row.rollout_id}/{e.row.attempt}/{e.row.revision}" for e in episodes)
        # Triplets go first: a crash between the two inserts leaves triplets without their
        # episode, and the episode is assembled again after the restart. Its triplets may
        # then come in another batch (another token), so they are skipped by key instead.
        held = self.store.triplet_revisions([_revision(e) for e in episodes])
        triplets = triplets_table([e for e in episodes if _revision(e) not in held])
        if triplets.num_rows:
            self.store.insert("triplets", triplets, dedup_token=f"triplets/{token}")
        self.store.insert(
            "episodes", episodes_table(list(episodes)), dedup_token=f"episodes/{token}"
        )
        return int(triplets.num_rows)

    def _learn_offsets(self, keys: set[tuple[str, int]]) -> None:
        """Ask the store how far it holds each (table, partition) not known yet."""
        unknown: dict[str, list[int]] = {}
        for table, partition in sorted(keys - self._written.keys()):
            unknown.setdefault(table, []).append(partition)
        for table, partitions in unknown.items():
            found = self.store.source_offsets(table, partitions)
            for partition in partitions:
                self._written[(table, partition)] = found.get(partition, -1)


def _revision(episode: Episode) -> tuple[str, int, int]:
    return (episode.row.rollout_id, episode.row.attempt, episode.row.revision)


def _offsets_token(sources: Sequence[Source]) -> str:
    ranges: dict[int, tuple[int, int]] = {}
    for partition, offset in sources:
        low, high = ranges.get(partition, (offset, offset))
        ranges[partition] = (min(low, offset), max(high, offset))
    return "raw/" + _digest(f"{p}:{low}-{high}" for p, (low, high) in sorted(ranges.items()))


def _digest(parts: Iterable[str]) -> str:
    return hashlib.sha256(",".join(parts).encode()).hexdigest()[:32]
