"""What the rollout table queues for its changelog: each event's bytes once, in segments ahead
of their header, on the rollout's partition; tombstones for what is forgotten. No broker: the
records are read from the outbox before `publish` would send them."""

from __future__ import annotations

import faust

from fulmen.streams import RolloutState
from fulmen.streams._changelog import Header, RecordCodec, Segment, load_record
from fulmen.streams._rollout_table import RolloutTable, input_partition
from tests.support.events import in_attempt, rollout
from tests.support.states import add_encoded, recover

PARTITIONS = 4


def _table() -> RolloutTable:
    app = faust.App("test-table", broker="kafka://127.0.0.1:9", store="memory://")
    changelog = app.topic(
        "test-table-changelog",
        partitions=PARTITIONS,
        internal=True,
        key_serializer="raw",
        value_serializer=RecordCodec(),
    )
    return RolloutTable(app, partitions=PARTITIONS, changelog=changelog)


def test_saves_queue_new_segments_before_their_header_on_the_rollouts_partition() -> None:
    table, state, events = _table(), RolloutState(), rollout("r7", calls=4)
    sent: list[tuple[int, bytes, bytes | None]] = []
    for chunk in (events[:3], events[3:7], events[7:]):
        add_encoded(state, chunk)
        table.save(b"r7", state)
        queued = list(table.outbox)
        sent += queued
        table._outbox.clear()  # as `publish` does
        kinds = [type(load_record(value)) for _, _, value in queued if value is not None]
        assert kinds == [Segment, Header], "one new segment, then the header"
        assert {p for p, _, _ in queued} == {input_partition(b"r7", PARTITIONS)}

    data, orphans = recover([(key, value) for _, key, value in sent])
    assert orphans == []
    recovered = data[b"r7"]
    assert isinstance(recovered, RolloutState)
    assert recovered.encoded == state.encoded, "each event's bytes, once, in order"


def test_forgetting_every_attempt_queues_tombstones_for_its_segments_and_its_header() -> None:
    table, state = _table(), RolloutState()
    add_encoded(state, rollout("r8", calls=2))
    add_encoded(state, [in_attempt(event, 2) for event in rollout("r8", calls=1)])
    table.save(b"r8", state)
    saved = list(table.outbox)
    table._outbox.clear()

    table.forget(b"r8", state, [1])
    _, key, header = table.outbox[-1]
    assert key == b"r8"
    assert header is not None, "attempt 2 is left: the header stays"
    table.forget(b"r8", state, [2])

    assert recover([(key, value) for _, key, value in [*saved, *table.outbox]]) == ({}, [])
    assert b"r8" not in table
