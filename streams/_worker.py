"""The stream worker: a Faust application that joins spans, rewards and rollout events into
scored episodes in the LightningStore. `fulmen worker` runs it.

Input messages arrive a fetched batch at a time (`BatchConsumer`, Faust's consumer without
its per-message stream path) and gather until `batch_max` of them or `batch_within_s` passed.
Per batch (`_flush`):
    decode → events over their rollout's budget refused → dead letters to the DLQ topic and
    the store → raw rows to the store → rollout buffers (a changelog-backed table keyed by
    rollout id; its changelog records published together) → the batch acked, so its offsets
    become committable.
Per tick (`_tick`):
    due buffers → reconciled with the store → episodes and triplets to the store → buffer
    table → episode-completed events → expired buffers forgotten.

A store write that fails is retried with backoff until it succeeds. Meanwhile nothing is
acked and nothing more is fetched: memory stays bounded by one batch, and a crash at any
point replays only what the sink recognises (see `StoreSink`). The input topics are
co-partitioned by rollout id (the producers key by it, murmur2 like Kafka's Java client); the
table's changelog is keyed the same way.

No message can stop the worker: whatever it cannot use (undecodable, over the size limit, of
another kind than its topic carries, past its rollout's budget) is a dead letter, and a dead
letter keeps at most `DEAD_LETTER_VALUE_MAX` bytes of its message, so re-publishing it cannot
be refused. The topics it reads and writes are created at start-up when missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, TypeVar, cast

import faust
from clickhouse_connect.driver.exceptions import Error as ClickHouseClientError
from faust.types import TP

from fulmen.producers import FulmenSettings, codec_for
from fulmen.schemas import Codec, Event
from fulmen.store import LightningStore, StoreUnavailable
from fulmen.streams._announce import Announcer
from fulmen.streams._assembly import Episode, is_episode_input
from fulmen.streams._batch_consumer import Batch, BatchConsumer, Record
from fulmen.streams._changelog import RecordCodec
from fulmen.streams._collector import collector_paused, time_collections, tune_collector
from fulmen.streams._intake import DeadLetter, Intake, Received, decode_batch, topic_kinds
from fulmen.streams._metrics import WorkerMetrics
from fulmen.streams._rollout_table import RolloutTable
from fulmen.streams._settings import WorkerSettings
from fulmen.streams._sink import StoreSink
from fulmen.streams._state import RolloutState
from fulmen.streams._topics import prepare_topics
from fulmen.streams._worker_app import worker_app

log = logging.getLogger("fulmen.worker")
_SWEEP_S = 5.0
T = TypeVar("T")


class StreamWorker:
    """One worker process of the Faust application `worker.app_id`."""

    def __init__(
        self, settings: FulmenSettings, worker: WorkerSettings, *, codec: Codec | None = None
    ) -> None:
        self.settings = settings
        self.worker = worker
        self.policy = worker.policy()
        self.codec = codec or codec_for(settings)
        self.metrics = WorkerMetrics()
        self.announcer = Announcer(worker.app_id)
        topics = settings.topics
        self.inputs = topics.stream_inputs()
        kinds = topic_kinds(topics)
        self.kinds = {topic: kinds[topic] for topic in self.inputs}
        changelog_name = f"{worker.app_id}-rollout-buffers-changelog"
        self.partitions = prepare_topics(settings, worker, changelog=changelog_name)
        self.app = worker_app(
            settings.kafka, worker, partitions=self.partitions, metrics=self.metrics
        )
        changelog = self.app.topic(
            changelog_name,
            partitions=self.partitions,
            compacting=True,
            internal=True,  # created beforehand, with its record size, by `prepare_topics`
            key_serializer="raw",
            value_serializer=RecordCodec(),
        )
        self.buffers = RolloutTable(self.app, partitions=self.partitions, changelog=changelog)
        self.app.tables.add(self.buffers)
        raw: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}
        self.source = self.app.topic(*self.inputs, **raw)
        self.dead_letters = self.app.topic(topics.dead_letter_topic(), **raw)
        self.episodes = self.app.topic(topics.for_event("episode"), **raw)
        self.app.batch_topics = frozenset(self.inputs)
        self.app.on_batch = self._take
        self.app.topics.add(self.source)  # subscribed; its messages come to `_take`
        self.app.timer(worker.tick_s, name="collect")(self._tick)
        self.app.on_partitions_revoked.connect(self._on_revoked)
        self.app.on_partitions_assigned.connect(self._on_assigned)

        self._sink: StoreSink | None = None
        self._pending: dict[TP, list[Record]] = {}
        self._pending_count = 0
        self._pending_since = 0.0
        self._taken: dict[TP, int] = {}
        """Per input partition, the highest offset this process flushed."""
        self._lock = asyncio.Lock()
        self._open: set[bytes] = set()
        """Rollouts with events not yet in an episode, as far as this process saw them."""
        self._sweep: list[bytes] = []
        """Keys the current pass over the buffers has yet to visit (`_sweep_slice`)."""
        self._sweep_step = 1

    async def _take(self, batch: Batch) -> None:
        """Gather fetched records; a full batch, or one that waited long enough, is flushed."""
        if not self._pending:
            self._pending_since = time.monotonic()
        for tp, records in batch.items():
            self._pending.setdefault(tp, []).extend(records)
            self._pending_count += len(records)
        waited = time.monotonic() - self._pending_since
        if self._pending_count >= self.worker.batch_max or waited >= self.worker.batch_within_s:
            await self._flush()

    async def _flush(self) -> None:
        async with self._lock, _batch_scope():
            batch, self._pending, self._pending_count = self._pending, {}, 0
            if not batch:
                return
            sink = await self._store_sink()
            messages = self._untaken(batch)
            states = _BatchStates(self.buffers)
            intake = decode_batch(
                messages,
                self.codec,
                kinds=self.kinds,
                max_event_bytes=self.worker.max_event_bytes,
                is_new=states.is_new,
            )
            self._refuse_over_budget(intake, states)
            self.metrics.count_intake(len(messages), intake)
            for dead in intake.dead:
                await self._send_dead_letter(dead)
            await self._retrying("dead", lambda: sink.write_dead(intake.dead))
            written = await self._retrying("raw", lambda: sink.write_raw(intake))
            self.metrics.raw_rows.inc(written)
            self._buffer(intake, states, now=time.time())
            await self.buffers.publish()
            cast(BatchConsumer, self.app.consumer).ack_batch(batch)
            for tp, records in batch.items():
                self._taken[tp] = max(self._taken.get(tp, -1), records[-1].offset)
            self._record_lag(batch)

    def _untaken(self, batch: Batch) -> list[Received]:
        """The batch's messages past what this process already took from their partition:
        a rebalance makes the consumer read again from the committed offset, and what lies
        between is in the store and the buffers already."""
        messages: list[Received] = []
        for tp, records in batch.items():
            taken = self._taken.get(tp, -1)
            fresh = [record for record in records if record.offset > taken]
            self.metrics.replayed.inc(len(records) - len(fresh))
            messages += [_received(record) for record in fresh]
        return messages

    async def _tick(self) -> None:
        waited = time.monotonic() - self._pending_since
        if self._pending and waited >= self.worker.batch_within_s:
            await self._flush()
        async with self._lock, _batch_scope():
            # Also after a restart with nothing new to read: recovered buffers may be due.
            sink, now = await self._store_sink(), time.time()
            # Only rollouts with news can be due, and those recovered from the changelog:
            # the sweep finds these, and forgets the expired.
            swept = self._sweep_slice()
            owned = self._owned(self._open | swept)
            buffers = [buffer for state in owned.values() for buffer in state.attempts.values()]
            assembled = await self._retrying(
                "check", lambda: sink.assemble_due(buffers, self.policy, now=now)
            )
            triplets = await self._retrying("episodes", lambda: sink.write_episodes(assembled.new))
            self.metrics.episodes_out.inc(len(assembled.new))
            self.metrics.triplets_out.inc(triplets)
            written = [*assembled.new, *assembled.recovered]
            for key in {episode.row.rollout_id.encode() for episode in written}:
                self.buffers.save(key, owned[key])
            await self._announce(written)
            self._open = {key for key, state in owned.items() if _has_news(state)}
            self._age({key: owned[key] for key in swept if key in owned}, now=now)
            await self.buffers.publish()

    def _sweep_slice(self) -> set[bytes]:
        """The next slice of a pass over every buffer this worker holds. A pass takes about
        `_SWEEP_S`, a slice a tick: visiting 17,000 buffers in one tick held the lock, and
        with it every batch, for up to 0.9 s."""
        if not self._sweep:
            assigned = self._assigned()
            partition_of = self.buffers.partition_of
            self._sweep = [key for key in self.buffers if partition_of(key) in assigned]
            self.metrics.buffered_rollouts.set(len(self._sweep))
            self._sweep_step = max(1, math.ceil(len(self._sweep) * self.worker.tick_s / _SWEEP_S))
        keys = set(self._sweep[-self._sweep_step :])
        del self._sweep[-self._sweep_step :]
        return keys

    def _refuse_over_budget(self, intake: Intake, states: _BatchStates) -> None:
        """Refuse the events that would take their rollout's buffered bytes (this batch's
        included) past `max_rollout_bytes`: what one rollout holds in memory stays bounded."""
        budget = self.worker.max_rollout_bytes
        sizes: dict[bytes, int] = {}
        refused: dict[int, str] = {}
        for index, (event, message) in enumerate(zip(intake.events, intake.messages, strict=True)):
            if not is_episode_input(event):  # feedback is written, never buffered
                continue
            key = event.meta.rollout_id.encode()
            if key not in sizes:
                state = states.get(key)
                sizes[key] = state.size_bytes if state else 0
            if sizes[key] + len(message.value) > budget:
                refused[index] = (
                    f"rollout {event.meta.rollout_id} buffers {sizes[key]} bytes; this event's "
                    f"{len(message.value)} would pass FULMEN_WORKER_MAX_ROLLOUT_BYTES={budget}"
                )
            else:
                sizes[key] += len(message.value)
        if refused:
            intake.refuse(refused, "rollout_too_large")

    def _buffer(self, intake: Intake, states: _BatchStates, *, now: float) -> None:
        touched: dict[bytes, RolloutState] = {}
        for event, message in zip(intake.events, intake.messages, strict=True):
            if not is_episode_input(event):
                continue
            key = event.meta.rollout_id.encode()
            state = touched.get(key) or states.get(key) or RolloutState()
            touched[key] = state
            state.add(event, message.value, now=now)
        for key, state in touched.items():
            self.buffers.save(key, state)
        self._open.update(touched)

    def _owned(self, keys: set[bytes]) -> dict[bytes, RolloutState]:
        """The buffers of `keys` in the partitions this worker holds now: the in-memory
        table keeps keys it wrote itself after their partition moved elsewhere."""
        assigned = self._assigned()
        found = ((key, self.buffers.get(key)) for key in keys)
        return {
            key: state
            for key, state in found
            if state is not None and self.buffers.partition_of(key) in assigned
        }

    def _assigned(self) -> set[int]:
        """The input partitions this worker holds now."""
        return {tp.partition for tp in self.app.consumer.assignment() if tp.topic in self.inputs}

    def _age(self, owned: dict[bytes, RolloutState], *, now: float) -> None:
        """Release the models of the attempts written and quiet, and forget the expired ones
        and their segments (`RolloutState.age`)."""
        for key, state in owned.items():
            if expired := state.age(self.policy, now=now):
                self.buffers.forget(key, state, expired)

    async def _announce(self, episodes: Sequence[Episode]) -> None:
        """Straight to the producer (batched by aiokafka): the topic exists, and Faust's
        `Topic.send` declares it again and wraps every message in futures."""
        topic, producer = self.episodes.get_topic_name(), self.app.producer
        for episode in episodes:
            value = self.codec.encode(self.announcer.completed(episode.row), topic=topic)
            key = episode.row.rollout_id.encode()
            await producer.send(topic, key, value, partition=None, timestamp=None, headers=None)

    async def _send_dead_letter(self, dead: DeadLetter) -> None:
        message = dead.message
        headers = [
            ("fulmen-problem", dead.problem.encode()),
            ("fulmen-detail", dead.detail.encode()),
            ("fulmen-source", dead.source.encode()),
        ]
        topic = self.dead_letters.get_topic_name()
        await self.app.producer.send(topic, message.key, message.value, None, None, headers)

    async def _store_sink(self) -> StoreSink:
        if self._sink is None:
            store = await self._retrying("connect", lambda: LightningStore(self.settings.store))
            self._sink = StoreSink(store)
        return self._sink

    async def _retrying(self, kind: str, call: Callable[[], T]) -> T:
        """`call()` in a thread, retried with exponential backoff while the store is
        unreachable or refuses (`StoreUnavailable` included: a store server down when the
        worker connects); other errors of Fulmen's own (a rejected batch) propagate."""
        delay, started = self.worker.retry_initial_s, time.perf_counter()
        while True:
            try:
                result = await asyncio.to_thread(call)
            except (ClickHouseClientError, OSError, StoreUnavailable) as error:
                self.metrics.store_available.set(0)
                self.metrics.store_retries.inc()
                log.warning("store write (%s) failed, retrying in %.1f s: %s", kind, delay, error)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.worker.retry_max_s)
                continue
            self.metrics.store_available.set(1)
            self.metrics.sink_latency.labels(kind).observe(time.perf_counter() - started)
            return result

    def _record_lag(self, batch: Batch) -> None:
        for tp, records in batch.items():
            highwater = self.app.consumer.highwater(tp)
            if highwater is not None and records:
                lag = max(highwater - records[-1].offset - 1, 0)
                self.metrics.lag.labels(tp.topic, str(tp.partition)).set(lag)

    async def _on_assigned(self, sender: Any, /, *args: Any, **kwargs: Any) -> None:
        """A new pass over the buffers starts at the next tick: it finds those recovered
        for the partitions just assigned."""
        self._sweep = []

    async def _on_revoked(self, sender: Any, /, *args: Any, **kwargs: Any) -> None:
        """Messages gathered but not flushed are dropped: nothing of them was acked, and
        after the rebalance every partition is read again from its committed offset (from its
        beginning when it has none), by this worker or the next owner. Waiting for the lock
        lets a batch or a tick in flight land first, its episode writes before the next owner
        asks the store which revisions it holds."""
        async with self._lock:
            self._pending, self._pending_count = {}, 0
            if self._sink is not None:
                self._sink.forget_offsets()

    def run(self) -> None:
        """Run the worker until SIGINT/SIGTERM (Faust's worker handles the signals)."""
        time_collections(self.metrics.gc_pauses)
        tune_collector()
        faust.Worker(self.app, loglevel="INFO", quiet=True).execute_from_commandline()


class _BatchStates:
    """The buffer table's states as one batch reads them: each rollout's looked up once (a
    Faust table read runs its sensors and its store's lookup), not once per event."""

    def __init__(self, table: RolloutTable) -> None:
        self._table = table
        self._read: dict[bytes, RolloutState | None] = {}

    def get(self, key: bytes) -> RolloutState | None:
        if key in self._read:
            return self._read[key]
        state = self._read[key] = self._table.get(key)
        return state

    def is_new(self, event: Event) -> bool:
        """Whether `event` is not in its rollout's buffer yet."""
        state = self.get(event.meta.rollout_id.encode())
        return state is None or not state.has_seen(event)


@contextlib.asynccontextmanager
async def _batch_scope() -> AsyncIterator[None]:
    """A batch or a tick, run with the garbage collector paused (see `collector_paused`)."""
    with collector_paused():
        yield


def _has_news(state: RolloutState) -> bool:
    return any(buffer.changed_since_write for buffer in state.attempts.values())


def _received(record: Record) -> Received:
    return Received(
        record.topic, record.partition, record.offset, record.key or b"", record.value or b""
    )
