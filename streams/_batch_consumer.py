"""Faust's Kafka consumer, delivering the worker's input topics a fetched batch at a time.

Faust stays the consumer-group, partition and offset framework: group membership, table
changelogs and their recovery, offset commits, flow control on rebalances. What changes is
the hot path. Faust hands each message to its streams one at a time (a task race per
message, a queue, a dozen sensor and ack callbacks); for the input topics this consumer
instead hands the handler everything one fetch returned, as aiokafka's records, and the
handler acknowledges a batch as a whole (`ack_batch`). Other topics (table changelogs while
they are recovered) take Faust's own path.

Three behaviours differ from Faust's consumer, all on purpose:
- The broker holds a fetch at most `fetch_max_wait_ms` (the worker's `FETCH_MAX_WAIT_S`,
  100 ms by default) where Faust sets 1,500. aiokafka keeps one fetch in flight per broker,
  for the partitions whose fetched records were all consumed; when only idle partitions (the
  feedback topic, say) are in it, the broker holds it the whole wait while records pile up
  in the busy ones, which cannot be fetched until it returns. At 1,000 events/s that held
  each batch back about a second and a half, after every batch.
- After a rebalance, an input partition with no committed offset is read again from its
  beginning, as `auto_offset_reset = earliest` says. Faust seeks only partitions with a
  committed offset, which leaves a young partition at the fetch position, past any message
  that was fetched but not yet acknowledged when the rebalance came: those were lost. The
  seek runs in the consumer's own thread, where Faust seeks the committed partitions.
- A message below the partition's read offset (already delivered) is skipped, as Faust
  does; gaps in a partition's offsets (transaction markers, compaction) are acknowledged
  with the batch around them, so commits are not held back.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol, cast

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, TransportT
from faust.types.tuples import ack_lock
from mode import Service, ServiceT


class Record(Protocol):
    """What the handler gets of a message: aiokafka's `ConsumerRecord`."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


Batch = Mapping[TP, Sequence[Record]]
"""Records by partition, each partition's in offset order."""
BatchHandler = Callable[[Batch], Awaitable[None]]


class BatchApp(faust.App):
    """A Faust app whose consumer delivers `batch_topics` to `on_batch` (set both before the
    worker starts)."""

    batch_topics: frozenset[str] = frozenset()
    on_batch: BatchHandler | None = None
    fetch_max_wait_ms: int = 100

    def _new_transport(self) -> TransportT:
        return _Transport(self.conf.broker_consumer, self)


class BatchConsumer(faust_aiokafka.Consumer):
    """See the module's docstring."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._acked_through: dict[TP, int] = {}
        """Per partition, the highest offset acknowledged since the last seek."""

    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _ResumingThread(self, loop=self.loop, beacon=self.beacon)

    @property
    def batch_topics(self) -> frozenset[str]:
        return cast(BatchApp, self.app).batch_topics

    def ack_batch(self, batch: Batch) -> None:
        """Acknowledge each partition's offsets up to its last record, from the first one not
        acknowledged yet: gaps (transaction markers, compaction) included, so that commits
        are not held back by offsets no record has."""
        with ack_lock:
            for tp, records in batch.items():
                if not records:
                    continue
                low = self._acked_through.get(tp)
                committed = self._committed_offset[tp]
                start = (
                    low + 1
                    if low is not None
                    else committed
                    if committed is not None
                    else records[0].offset
                )
                last = records[-1].offset
                acked_index = self._acked_index[tp]
                fresh = [offset for offset in range(start, last + 1) if offset not in acked_index]
                acked_index.update(fresh)
                self._acked[tp].extend(fresh)
                self._n_acked += len(fresh)
                self._acked_through[tp] = max(last, low if low is not None else last)

    async def perform_seek(self) -> None:
        """Faust's seek to the committed offsets (see `_ResumingThread`); what is read again
        is acknowledged again."""
        await super().perform_seek()
        self._acked_through.clear()

    async def _drain_messages(self, fetcher: ServiceT) -> None:  # pragma: no cover
        consumer_stopped = cast(Service, self)._stopped.is_set
        fetcher_stopped = cast(Service, fetcher)._stopped.is_set
        try:
            while not (consumer_stopped() or fetcher_stopped()):
                records, active = await self._wait_next_records(timeout=1.0)
                await asyncio.sleep(0)
                if not records or self.should_stop or not self.flow_active:
                    continue
                batch: dict[TP, Sequence[Record]] = {}
                for tp, fetched in records.items():
                    if active is not None and tp not in active:
                        continue
                    unread = self._unread(tp, fetched)
                    if not unread:
                        continue
                    if tp.topic in self.batch_topics:
                        batch[tp] = unread
                    else:
                        await self._deliver_one_by_one(tp, unread)
                if batch:
                    handler = cast(BatchApp, self.app).on_batch
                    assert handler is not None, "BatchApp.on_batch is set before the worker starts"
                    # What Faust's stream sensor records: its stalled-stream check reads it.
                    inbound = self.app.monitor.stream_inbound_time
                    inbound.update(dict.fromkeys(batch, time.monotonic()))
                    await handler(batch)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                return
            raise

    def _unread(self, tp: TP, records: Sequence[Record]) -> Sequence[Record]:
        """The records at or past the partition's read offset, which moves past them."""
        read = self._read_offset[tp]
        if read is not None and records and records[0].offset < read:
            records = [record for record in records if record.offset >= read]
        if records:
            self._read_offset[tp] = records[-1].offset
        return records

    async def _deliver_one_by_one(self, tp: TP, records: Sequence[Record]) -> None:
        """Faust's own path: each message to the conductor, abandoned when a rebalance
        suspends the flow."""
        for record in records:
            message = self._to_message(tp, record)
            await self.wait_first(self.callback(message), self.suspend_flow.wait())


class _ResumingThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # Faust passes a fixed 1,500 ms; the consumer reads it when it starts its fetcher.
        consumer._fetch_max_wait_ms = cast(BatchApp, self.app).fetch_max_wait_ms
        return consumer

    async def seek_to_committed(self) -> Mapping[TP, int]:
        return cast(Mapping[TP, int], await self.call_thread(self._seek_committed_or_beginning))

    async def _seek_committed_or_beginning(self) -> Mapping[TP, int]:
        consumer = self._ensure_consumer()
        committed: Mapping[Any, int | None] = await consumer.seek_to_committed()
        topics = cast(BatchConsumer, self.consumer).batch_topics
        never = [tp for tp, offset in committed.items() if tp.topic in topics and not offset]
        if never:
            await consumer.seek_to_beginning(*never)
        return cast(Mapping[TP, int], committed)


class _Transport(faust_aiokafka.Transport):
    Consumer = BatchConsumer
