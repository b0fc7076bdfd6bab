"""`python -m bench.worker_stages`: the stream worker's CPU per event, stage by stage, in process.

No Kafka and no store: the bench's events (rollouts of 9, as `make bench-streams` produces
them) are encoded once, then each stage of a worker's batch and tick runs over them as the
worker runs it, timed with the process's CPU clock (best of `--repeat` runs). What it
prints is µs of CPU per event of the batch, per stage: where `worker_cpu_us_per_event`
goes, less the Kafka client, the event loop and the store's HTTP round trips.

Stages: `records` (aiokafka parsing a fetched record batch into `ConsumerRecord`s),
`decode` (`decode_batch`), `buffer` (`RolloutState.add`), `changelog` (the records of each
touched rollout), `raw_rows` (the Arrow batches of the raw tables, conformed and serialized as the
store client sends them), `assemble`, `episode_rows` (episodes and triplets as Arrow) and
`announce` (episode-completed events encoded). The cyclic garbage collector is off while a
stage runs; what it costs the worker is told by the objects a buffered event keeps tracked.
"""

from __future__ import annotations

import argparse
import gc
import io
import time
from collections.abc import Callable
from typing import Any

import pyarrow as pa
from aiokafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder
from aiokafka.structs import ConsumerRecord

from fulmen.kafka import TopicSettings
from fulmen.schemas import SingleObjectCodec
from fulmen.store import EVENT_TABLES
from fulmen.store._conform import conform
from fulmen.store._event_rows import events_table
from fulmen.streams._announce import Announcer
from fulmen.streams._assembler import episodes_table, triplets_table
from fulmen.streams._assembly import AssemblyPolicy, assemble, is_episode_input
from fulmen.streams._changelog import dump_record, new_segments
from fulmen.streams._intake import Intake, Received, decode_batch, topic_kinds
from fulmen.streams._state import RolloutState
from tests.support.events import rollout


def _messages(count: int) -> list[Received]:
    codec, topics = SingleObjectCodec(), TopicSettings()
    out: list[Received] = []
    for i in range(count // 9):
        for event in rollout(f"t{i}"):
            topic = topics.for_event(event.event_type)
            key = event.meta.rollout_id.encode()
            out.append(Received(topic, 0, len(out), key, codec.encode(event, topic=topic)))
    return out


def _record_batches(messages: list[Received]) -> list[bytes]:
    """The messages as Kafka record batches of 500 (v2 format, uncompressed)."""
    batches: list[bytes] = []
    for start in range(0, len(messages), 500):
        builder = DefaultRecordBatchBuilder(
            magic=2, compression_type=0, is_transactional=False, producer_id=-1,
            producer_epoch=-1, base_sequence=-1, batch_size=2**30,
        )  # fmt: skip
        for offset, message in enumerate(messages[start : start + 500]):
            builder.append(offset, timestamp=0, key=message.key, value=message.value, headers=[])
        batches.append(bytes(builder.build()))
    return batches


def _parse(batches: list[bytes]) -> list[ConsumerRecord[bytes, bytes]]:
    """What aiokafka's fetcher makes of the batches: a `ConsumerRecord` per message."""
    out: list[ConsumerRecord[bytes, bytes]] = []
    for data in batches:
        for r in DefaultRecordBatch(data):
            key_size = len(r.key) if r.key is not None else -1
            value_size = len(r.value) if r.value is not None else -1
            fields = (r.timestamp, r.timestamp_type, r.key, r.value, r.checksum, key_size)
            record = ConsumerRecord("t", 0, r.offset, *fields, value_size, tuple(r.headers))
            out.append(record)
    return out


def _best(run: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """The least CPU time of `repeat` runs, with the cyclic collector off: what a collection
    costs depends on everything else the process holds (see `_tracked`), not on the stage."""
    best, result = float("inf"), None
    for _ in range(repeat):
        result = None
        gc.collect()
        gc.disable()
        try:
            started = time.process_time()
            result = run()
            best = min(best, time.process_time() - started)
        finally:
            gc.enable()
    return best, result


def _tracked(build: Callable[[], Any]) -> tuple[float, Any]:
    """Objects the cyclic collector tracks that `build()`'s result holds. A worker holds each
    rollout's buffer `retention_s` after its episode: every full collection visits all of
    them (about 1 µs each on the bench machine)."""
    gc.collect()
    before = len(gc.get_objects())
    result = build()
    gc.collect()
    return len(gc.get_objects()) - before, result


def _raw_rows(intake: Intake) -> int:
    """The raw tables' Arrow batches as `LightningStore.write_events` builds and conforms
    them, serialized as Arrow IPC (what clickhouse-connect's `insert_arrow` sends)."""
    kept: dict[str, tuple[list[Any], list[tuple[int, int]]]] = {}
    for event, fields, message in zip(intake.events, intake.fields, intake.messages, strict=True):
        table_fields, sources = kept.setdefault(EVENT_TABLES[type(event)], ([], []))
        table_fields.append(fields)
        sources.append((message.partition, message.offset))
    size = 0
    for table, (fields, sources) in kept.items():
        rows = conform(table, events_table(table, fields, sources))
        sink = io.BytesIO()
        with pa.ipc.new_stream(sink, rows.schema) as writer:
            writer.write_table(rows)
        size += sink.tell()
    return size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=18_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    messages = _messages(args.events)
    count = len(messages)
    kinds = topic_kinds(TopicSettings())
    codec, policy, announcer = SingleObjectCodec(), AssemblyPolicy(), Announcer("bench")
    stages: dict[str, float] = {}

    batches = _record_batches(messages)
    stages["records"], _ = _best(lambda: _parse(batches), args.repeat)

    def decode() -> Intake:
        return decode_batch(
            messages, codec, kinds=kinds, max_event_bytes=1_000_000, is_new=lambda _: True
        )

    stages["decode"], intake = _best(decode, args.repeat)

    def buffer(intake: Intake = intake) -> dict[bytes, RolloutState]:
        states: dict[bytes, RolloutState] = {}
        for event, message in zip(intake.events, intake.messages, strict=True):
            if is_episode_input(event):
                key = event.meta.rollout_id.encode()
                state = states.get(key) or RolloutState()
                states[key] = state
                state.add(event, message.value, now=0.0)
        return states

    stages["buffer"], states = _best(buffer, args.repeat)
    tracked, _ = _tracked(lambda: buffer(decode()))
    stages["changelog"], _ = _best(lambda: _changelog_records(states), args.repeat)
    stages["raw_rows"], _ = _best(lambda: _raw_rows(intake), args.repeat)

    def assembled() -> list[Any]:
        # Each run assembles fresh buffers' first revision, as the worker does once per rollout.
        for state in states.values():
            for b in state.attempts.values():
                b.revision, b.changed_since_write = -1, True
        return [assemble(b, policy, now=1.0) for s in states.values() for b in s.attempts.values()]

    stages["assemble"], episodes = _best(assembled, args.repeat)
    stages["episode_rows"], _ = _best(
        lambda: (
            conform("episodes", episodes_table(episodes)),
            conform("triplets", triplets_table(episodes)),
        ),
        args.repeat,
    )
    stages["announce"], _ = _best(
        lambda: [codec.encode(announcer.completed(e.row), topic="e") for e in episodes],
        args.repeat,
    )
    print(f"{count:,} events ({count // 9:,} rollouts of 9), best of {args.repeat}, µs/event:")
    for name, seconds in stages.items():
        print(f"  {name:<13} {seconds / count * 1e6:7.2f}")
    print(f"  {'total':<13} {sum(stages.values()) / count * 1e6:7.2f}")
    print(f"objects tracked by the collector per buffered event: {tracked / count:.1f}")


def _changelog_records(states: dict[bytes, RolloutState]) -> list[bytes]:
    """Each state's records as its first write makes them: its segments, then its header."""
    records: list[bytes] = []
    for key, state in states.items():
        state.saved.clear()
        state.segments.clear()
        records += [dump_record(segment) for _, segment in new_segments(key, state)]
        records.append(dump_record(state))
    return records


if __name__ == "__main__":
    main()
