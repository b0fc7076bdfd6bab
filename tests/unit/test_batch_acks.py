"""The batch consumer: a fetched batch acknowledged as a whole (the offsets Faust would commit
afterwards), and how long the broker may hold its fetches."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from faust.types import TP

from fulmen.streams._batch_consumer import BatchApp, BatchConsumer

SPANS = TP("spans", 0)


@dataclass(frozen=True)
class _Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None = b"k"
    value: bytes | None = b"v"


def _records(*offsets: int) -> list[_Record]:
    return [_Record(SPANS.topic, SPANS.partition, offset) for offset in offsets]


@pytest.fixture
def consumer() -> BatchConsumer:
    app = BatchApp("acks", broker="kafka://127.0.0.1:1", autodiscover=False)
    app.batch_topics = frozenset({SPANS.topic})
    created = app.consumer
    assert isinstance(created, BatchConsumer)
    return created


def test_a_batch_makes_its_last_offset_committable(consumer: BatchConsumer) -> None:
    consumer.ack_batch({SPANS: _records(0, 1, 2, 3)})
    assert consumer._new_offset(SPANS) == 4


def test_offsets_no_record_has_do_not_hold_commits_back(consumer: BatchConsumer) -> None:
    # A transaction marker at 2, compacted records at 5-6, and a gap between two batches.
    consumer.ack_batch({SPANS: _records(0, 1, 3, 4, 7)})
    consumer.ack_batch({SPANS: _records(9, 10)})
    assert consumer._new_offset(SPANS) == 11


def test_a_batch_read_again_after_a_seek_is_acknowledged_again(consumer: BatchConsumer) -> None:
    consumer.ack_batch({SPANS: _records(0, 1, 2)})
    assert consumer._new_offset(SPANS) == 3
    consumer._committed_offset[SPANS] = 3
    consumer._acked_through.clear()  # what `perform_seek` does
    consumer.ack_batch({SPANS: _records(3, 4)})
    assert consumer._new_offset(SPANS) == 5


def test_nothing_below_the_committed_offset_is_acknowledged(consumer: BatchConsumer) -> None:
    consumer._committed_offset[SPANS] = 5
    consumer.ack_batch({SPANS: _records(3, 4, 5, 6)})
    assert sorted(consumer._acked[SPANS]) == [5, 6]


async def test_the_broker_holds_a_fetch_as_long_as_the_worker_says() -> None:
    """Faust's fixed 1.5 s would hold busy partitions back behind a fetch of idle ones."""
    app = BatchApp("fetch", broker="kafka://127.0.0.1:1", autodiscover=False)
    app.fetch_max_wait_ms = 77
    thread = app.consumer._thread  # type: ignore[attr-defined]
    kafka_consumer = thread._create_worker_consumer(app.transport)
    try:
        assert kafka_consumer._fetch_max_wait_ms == 77
    finally:
        await kafka_consumer.stop()
