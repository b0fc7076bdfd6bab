"""The worker's rollout buffers: a Faust table keyed by rollout id, whose changelog holds each
event's bytes once (`streams/_changelog.py`).

Write a state with `save`, never by assignment: `save` sends the segments of the events the
changelog lacks, then the header. Recovery folds the segments back into their states before
the input partitions resume. A key, and every segment key of its rollout, goes to the
partition its rollout id hashes to (murmur2, as the producers key the inputs): the changelog
is co-partitioned with the inputs.
"""

from __future__ import annotations

from typing import Any

import faust
from aiokafka.partitioner import murmur2
from faust.types import TP

from fulmen.streams._changelog import (
    RecordCodec,
    fold_all,
    new_segments,
    rollout_key,
    segment_keys,
)
from fulmen.streams._state import RolloutState


class RolloutTable(faust.Table[bytes, RolloutState]):
    """Rollout id (bytes) → `RolloutState`, in memory, backed by a compacted changelog."""

    def __init__(self, app: faust.App, *, partitions: int, changelog: faust.TopicT) -> None:
        super().__init__(
            app,
            name="rollout-buffers",
            default=None,
            beacon=app.tables.beacon,
            partitions=partitions,
            changelog_topic=changelog,
        )
        # Table() derives its serializers from model types only (JSON here): set ours.
        self.key_serializer, self.value_serializer = "raw", RecordCodec()
        self._partition_count = partitions
        self._partitions: dict[bytes, int] = {}

    def save(self, key: bytes, state: RolloutState) -> None:
        """Set `state`, sending its new events' segments, then its header."""
        partition = self.partition_of(key)
        for found, segment in new_segments(key, state):
            self.send_changelog(partition, found, segment)
        self[key] = state

    def forget(self, key: bytes, state: RolloutState, attempts: list[int]) -> None:
        """Drop `attempts` of `state` and their segments, and the rollout when none is left."""
        partition = self.partition_of(key)
        for attempt in attempts:
            self._delete(partition, segment_keys(key, state, attempt))
            state.forget(attempt)
        if state.attempts:
            self[key] = state
        else:
            del self[key]
            self._partitions.pop(key, None)

    def partition_of(self, key: bytes) -> int:
        """The input partition of a rollout key, hashed once (murmur2 is pure Python here)."""
        partition = self._partitions.get(key)
        if partition is None:
            partition = self._partitions[key] = input_partition(key, self._partition_count)
        return partition

    def partition_for_key(self, key: Any) -> int:
        return self.partition_of(rollout_key(key))

    async def on_recovery_completed(self, active_tps: set[TP], standby_tps: set[TP]) -> None:
        for key in fold_all(self.data):  # segments no header counts
            self._delete(self.partition_for_key(key), [key])
        await super().on_recovery_completed(active_tps, standby_tps)

    def _delete(self, partition: int, keys: list[bytes]) -> None:
        for key in keys:
            self.send_changelog(partition, key, None, value_serializer="raw")


def input_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's Java client (and Fulmen's producers) give `key`."""
    return (int(murmur2(key)) & 0x7FFFFFFF) % partitions
