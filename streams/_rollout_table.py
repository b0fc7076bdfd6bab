"""The worker's rollout buffers: a Faust table keyed by rollout id, whose changelog holds each
event's bytes once (`streams/_changelog.py`).

Write a state with `save`, never by assignment: `save` queues the segments of the events the
changelog lacks, then the header. Recovery folds the segments back into their states before
the input partitions resume. A key, and every segment key of its rollout, goes to the
partition its rollout id hashes to (murmur2, as the producers key the inputs): the changelog
is co-partitioned with the inputs.

Records wait in the table's outbox until `publish`, which hands them to the producer in one
go, in order. Faust's own path (`send_changelog`) puts each record through its producer
buffer, whose publish awaits a stampede guard of three event-loop rounds, and its commit
flush waits on the buffer a record at a time: about six loop callbacks a record, more than a
third of an event's CPU in the worker. Faust's commit still flushes the producer, so every
record published before a batch is acked is in Kafka before that batch's offsets are.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

import faust
from aiokafka.partitioner import murmur2
from faust.types import TP

from fulmen.streams._changelog import (
    RecordCodec,
    dump_record,
    fold_all,
    new_segments,
    rollout_key,
    segment_keys,
)
from fulmen.streams._state import RolloutState

log = logging.getLogger("fulmen.worker")
Outgoing = tuple[int, bytes, bytes | None]
"""A changelog record: its partition, key and value (None: a tombstone)."""


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
        self._outbox: list[Outgoing] = []
        self._deliveries: list[asyncio.Future[Any]] = []

    def save(self, key: bytes, state: RolloutState) -> None:
        """Set `state`, queueing its new events' segments, then its header."""
        partition = self.partition_of(key)
        self._outbox += [
            (partition, found, dump_record(segment)) for found, segment in new_segments(key, state)
        ]
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

    @property
    def outbox(self) -> tuple[Outgoing, ...]:
        """The records `publish` will send next, in order."""
        return tuple(self._outbox)

    async def publish(self) -> None:
        """Hand the queued records to the producer, in the order they were queued. A record
        the broker refused in the end (after the producer's retries) is logged by the next
        call (a callback a record would cost a loop round each)."""
        self._deliveries = [d for d in self._deliveries if not _delivered(d)]
        records, self._outbox = self._outbox, []
        if not records:
            return
        topic = self.changelog_topic.get_topic_name()
        producer = await self.app.maybe_start_producer()
        for partition, key, value in records:
            delivery = await producer.send(topic, key, value, partition, None, None)
            self._deliveries.append(cast(asyncio.Future[Any], delivery))

    def on_key_set(self, key: bytes, value: RolloutState) -> None:
        self._outbox.append((self.partition_of(key), key, dump_record(value)))
        self._sensor_on_set(self, key, value)

    def on_key_del(self, key: bytes) -> None:
        self._outbox.append((self.partition_of(key), key, None))
        self._sensor_on_del(self, key)

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
        await self.publish()
        await super().on_recovery_completed(active_tps, standby_tps)

    def _delete(self, partition: int, keys: list[bytes]) -> None:
        self._outbox += [(partition, key, None) for key in keys]


def _delivered(delivery: asyncio.Future[Any]) -> bool:
    """Whether `delivery` is settled, logging its failure if it failed."""
    if not delivery.done():
        return False
    if not delivery.cancelled() and (error := delivery.exception()) is not None:
        log.error("a rollout-buffers changelog record was not written: %s", error)
    return True


def input_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's Java client (and Fulmen's producers) give `key`."""
    return (int(murmur2(key)) & 0x7FFFFFFF) % partitions
