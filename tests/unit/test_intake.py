"""Decoding a batch of messages: events with their offsets, duplicates, dead letters."""

from __future__ import annotations

from fulmen.schemas import SingleObjectCodec
from fulmen.streams import Received, decode_batch
from tests.support.events import rollout

CODEC = SingleObjectCodec()


def _message(offset: int, value: bytes, topic: str = "fulmen.spans") -> Received:
    return Received(topic, 2, offset, b"r1", value)


def test_every_message_is_an_event_a_duplicate_or_a_dead_letter() -> None:
    events = rollout(calls=1)
    span = CODEC.encode(events[1], topic="fulmen.spans")
    nameless = CODEC.encode(
        events[2].model_copy(update={"meta": events[2].meta.model_copy(update={"rollout_id": ""})}),
        topic="fulmen.spans",
    )
    messages = [
        _message(10, span),
        _message(11, span),  # repeated in the batch
        _message(12, b"garbage"),
        _message(13, span[:-5]),
        _message(14, b"\xc3\x01" + b"x" * 2000),
        _message(15, nameless),
        _message(16, CODEC.encode(events[0], topic="fulmen.rollouts")),
    ]
    seen_before = {events[0].meta.event_id}
    intake = decode_batch(
        messages, CODEC, max_event_bytes=1000, is_new=lambda e: e.meta.event_id not in seen_before
    )
    assert intake.events == [events[1]]
    assert intake.sources == [(2, 10)]
    assert intake.duplicates == 2
    assert [(d.message.offset, d.problem) for d in intake.dead] == [
        (12, "truncated"),
        (13, "corrupt_payload"),
        (14, "too_large"),
        (15, "invalid_event"),
    ]
    assert "rollout_id" in intake.dead[3].detail
    assert intake.dead[0].message.value == b"garbage"
    assert intake.dead[0].row()["problem"] == "truncated"
