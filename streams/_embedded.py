"""The embedded runner: the stream stage of the embedded default, in process.

It reads the in-process bus that the producer SDK writes to, and does what the stream worker
does with Kafka: decode (undecodable messages become dead letters), write each raw event
once, assemble episodes, write episodes and triplets, and only then release what it read.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field

from fulmen.kafka import TopicSettings
from fulmen.producers import InProcessBus
from fulmen.schemas import Codec, SingleObjectCodec
from fulmen.store import LightningStore
from fulmen.streams._announce import Announcer
from fulmen.streams._assembler import EpisodeAssembler
from fulmen.streams._assembly import AssemblyPolicy, Episode
from fulmen.streams._intake import (
    Intake,
    Received,
    dead_letters_table,
    decode_batch,
    topic_kinds,
)
from fulmen.streams._sink import StoreSink


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
        max_event_bytes: int = 1_000_000,
    ) -> None:
        self.bus = bus
        self.store = store
        self.topics = topics or TopicSettings()
        self.assembler = EpisodeAssembler(policy)
        self.codec = codec or SingleObjectCodec()
        self.batch_max = batch_max
        self.stats = RunnerStats()
        self._offsets = dict.fromkeys(self.topics.event_topics(), 0)
        self.kinds = topic_kinds(self.topics)
        self.max_event_bytes = max_event_bytes
        self.sink = StoreSink(store)
        self.announcer = Announcer("embedded-runner")
        self._id = uuid.uuid4().hex

    def step(self, *, now: float | None = None, wait_s: float = 0.0) -> int:
        """Read, write and assemble what is on the bus; returns how many messages it read."""
        now = time.time() if now is None else now
        read = 0
        for topic, offset in self._offsets.items():
            messages = self.bus.read(topic, offset, max_messages=self.batch_max, timeout_s=wait_s)
            if not messages:
                continue
            received = [Received(topic, 0, m.offset, m.key, m.value) for m in messages]
            intake = decode_batch(
                received,
                self.codec,
                kinds=self.kinds,
                max_event_bytes=self.max_event_bytes,
                is_new=self.assembler.is_new,
            )
            # Written first, buffered after: a failed write leaves nothing marked as seen.
            # Bus offsets restart at 0 in every process: the runner's id keeps two runs
            # into one store from deduplicating each other's writes.
            token = f"{self._id}/{topic}/{messages[0].offset}-{messages[-1].offset}"
            self.store.write_events(intake.events, fields=intake.fields, dedup_token=token)
            if intake.dead:
                rows = dead_letters_table(intake.dead)
                self.store.insert("dead_letters", rows, dedup_token=f"{token}/dead")
            for event, message in zip(intake.events, intake.messages, strict=True):
                self.assembler.add(event, now=now, value=message.value)
            self._offsets[topic] = messages[-1].offset + 1
            self.bus.release(topic, self._offsets[topic])
            self._count(len(messages), intake)
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
        self.stats.triplets_out += self.sink.write_episodes(episodes)
        self.stats.episodes_out += len(episodes)
        topic = self.topics.for_event("episode")
        for episode in episodes:
            value = self.codec.encode(self.announcer.completed(episode.row), topic=topic)
            self.bus.append(topic, episode.row.rollout_id.encode(), value)

    def _count(self, read: int, intake: Intake) -> None:
        self.stats.events_in += read - len(intake.dead)
        self.stats.duplicates += intake.duplicates
        self.stats.dead_letters += len(intake.dead)
        for dead in intake.dead:
            self.stats.by_problem[dead.problem] = self.stats.by_problem.get(dead.problem, 0) + 1
