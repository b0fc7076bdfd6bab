"""The embedded runner: the stream stage of the embedded default, in process.

It reads the in-process bus that the producer SDK writes to, and does what the stream worker
does with Kafka: decode (undecodable messages become dead letters), write each raw event
once, assemble episodes, write episodes and triplets, and only then release what it read.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
import time
from dataclasses import dataclass, field

import pyarrow as pa
import uuid_utils

from fulmen.kafka import TopicSettings
from fulmen.producers import InProcessBus
from fulmen.producers.transport import BusMessage
from fulmen.schemas import (
    Codec,
    DecodeError,
    EpisodeCompleted,
    Event,
    EventMeta,
    SingleObjectCodec,
)
from fulmen.store import TABLES, LightningStore
from fulmen.streams._assembler import EpisodeAssembler, episodes_table, triplets_table
from fulmen.streams._assembly import AssemblyPolicy, Episode


@dataclass
class RunnerStats:
    events_in: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    episodes_out: int = 0
    triplets_out: int = 0
    by_problem: dict[str, int] = field(default_factory=dict)


class EmbeddedRunner:
    """Assembles what the SDK emits on `bus` into `store`. Call `step` in a loop (or `run`
    in a thread); `finish` assembles every rollout still buffered, timed-out ones included."""

    def __init__(
        self,
        bus: InProcessBus,
        store: LightningStore,
        *,
        topics: TopicSettings | None = None,
        policy: AssemblyPolicy | None = None,
        codec: Codec | None = None,
        batch_max: int = 10_000,
    ) -> None:
        self.bus = bus
        self.store = store
        self.topics = topics or TopicSettings()
        self.assembler = EpisodeAssembler(policy)
        self.codec = codec or SingleObjectCodec()
        self.batch_max = batch_max
        self.stats = RunnerStats()
        self._offsets = dict.fromkeys(self.topics.event_topics(), 0)
        self._producer_id = f"embedded-runner-{uuid_utils.uuid7().hex[-8:]}"
        self._sequence = itertools.count()

    def step(self, *, now: float | None = None, wait_s: float = 0.0) -> int:
        """Read, write and assemble what is on the bus; returns how many messages it read."""
        now = time.time() if now is None else now
        read = 0
        for topic, offset in self._offsets.items():
            messages = self.bus.read(topic, offset, max_messages=self.batch_max, timeout_s=wait_s)
            if not messages:
                continue
            fresh: list[Event] = []
            dead: list[dict[str, object]] = []
            in_batch: set[str] = set()
            for message in messages:
                try:
                    event = self.codec.decode(message.value, topic=topic)
                except DecodeError as error:
                    dead.append(_dead_letter(topic, message.offset, message, error))
                    continue
                if event.meta.event_id in in_batch or not self.assembler.is_new(event):
                    continue
                in_batch.add(event.meta.event_id)
                fresh.append(event)
            # Written first, buffered after: a failed write leaves nothing marked as seen.
            token = f"{topic}/{messages[0].offset}-{messages[-1].offset}"
            self.store.write_events(fresh, dedup_token=token)
            if dead:
                rows = pa.Table.from_pylist(dead, schema=TABLES["dead_letters"])
                self.store.insert("dead_letters", rows, dedup_token=token)
            for event in fresh:
                self.assembler.add(event, now=now)
            self._offsets[topic] = messages[-1].offset + 1
            self.bus.release(topic, self._offsets[topic])
            self._count(len(messages), len(fresh), dead)
            read += len(messages)
        self._write(self.assembler.collect(now=now))
        return read

    def finish(self) -> None:
        """Drain the bus and assemble everything still buffered (unfinished rollouts as
        `timeout`): the end of an embedded run."""
        while self.step():
            pass
        self._write(self.assembler.collect(now=time.time(), flush=True))

    def run(self, stop: threading.Event, *, interval_s: float = 0.2) -> None:
        while not stop.is_set():
            self.step(wait_s=interval_s)

    def _write(self, episodes: list[Episode]) -> None:
        if not episodes:
            return
        keys = ",".join(f"{e.row.rollout_id}/{e.row.attempt}/{e.row.revision}" for e in episodes)
        token = hashlib.sha256(keys.encode()).hexdigest()
        triplets = triplets_table(episodes)
        self.store.insert("triplets", triplets, dedup_token=f"triplets/{token}")
        self.store.insert("episodes", episodes_table(episodes), dedup_token=f"episodes/{token}")
        self._announce(episodes)
        self.stats.episodes_out += len(episodes)
        self.stats.triplets_out += triplets.num_rows

    def _announce(self, episodes: list[Episode]) -> None:
        """Publish an `EpisodeCompleted` per written episode on the episodes topic."""
        topic = self.topics.for_event("episode")
        for episode in episodes:
            row = episode.row
            completed = EpisodeCompleted(
                meta=EventMeta(
                    event_id=str(uuid_utils.uuid7()),
                    rollout_id=row.rollout_id,
                    attempt=row.attempt,
                    producer_id=self._producer_id,
                    sequence=next(self._sequence),
                    agent_name=row.agent_name,
                    model_version=row.model_version,
                    resources_version=row.resources_version,
                    emitted_at_unix_nano=time.time_ns(),
                ),
                revision=row.revision,
                task_id=row.task_id,
                status=row.status,
                reward=row.reward,
                num_llm_calls=row.num_llm_calls,
                finished_at_unix_nano=row.finished_at,
            )
            value = self.codec.encode(completed, topic=topic)
            self.bus.append(topic, row.rollout_id.encode(), value)

    def _count(self, read: int, fresh: int, dead: list[dict[str, object]]) -> None:
        self.stats.events_in += read - len(dead)
        self.stats.duplicates += read - len(dead) - fresh
        self.stats.dead_letters += len(dead)
        for row in dead:
            problem = str(row["problem"])
            self.stats.by_problem[problem] = self.stats.by_problem.get(problem, 0) + 1


def _dead_letter(
    topic: str, offset: int, message: BusMessage, error: DecodeError
) -> dict[str, object]:
    return {
        "received_at": int(time.time() * 1000),
        "topic": topic,
        "partition": 0,
        "offset": offset,
        "key": message.key,
        "value": message.value,
        "problem": error.problem,
        "detail": error.detail,
    }
