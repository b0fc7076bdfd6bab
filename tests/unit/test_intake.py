"""Decoding a batch of messages: events with their offsets, duplicates, dead letters."""

from __future__ import annotations

import math

import pytest

from fulmen.kafka import TopicSettings
from fulmen.schemas import Event, Reward, SingleObjectCodec, Span
from fulmen.streams import DEAD_LETTER_VALUE_MAX, Intake, Received, decode_batch, topic_kinds
from tests.support.events import llm_span, meta, rollout

CODEC = SingleObjectCodec()
KINDS = topic_kinds(TopicSettings())


def _decode(messages: list[Received], *, max_event_bytes: int = 10_000_000) -> Intake:
    return decode_batch(
        messages, CODEC, kinds=KINDS, max_event_bytes=max_event_bytes, is_new=lambda e: True
    )


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
        _message(16, CODEC.encode(events[0], topic="fulmen.rollouts"), "fulmen.rollouts"),
    ]
    seen_before = {events[0].meta.event_id}
    intake = decode_batch(
        messages,
        CODEC,
        kinds=KINDS,
        max_event_bytes=1000,
        is_new=lambda e: e.meta.event_id not in seen_before,
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


def test_an_event_of_another_kind_than_its_topic_carries_is_a_dead_letter() -> None:
    reward = Reward(meta=meta("r1", 5), value=1.0)
    span = llm_span("r1", 1)
    messages = [
        _message(1, CODEC.encode(reward, topic="fulmen.rewards"), "fulmen.spans"),
        _message(2, CODEC.encode(span, topic="fulmen.spans"), "fulmen.rewards"),
        _message(3, CODEC.encode(reward, topic="fulmen.rewards"), "fulmen.rewards"),
        _message(4, CODEC.encode(span, topic="fulmen.spans"), "fulmen.spans"),
        _message(5, CODEC.encode(span, topic="fulmen.spans"), "somewhere.else"),
    ]
    intake = _decode(messages)
    assert [(d.message.offset, d.problem) for d in intake.dead] == [
        (1, "wrong_topic"),
        (2, "wrong_topic"),
        (5, "wrong_topic"),
    ]
    assert "a reward event on fulmen.spans, which carries span" in intake.dead[0].detail
    assert [m.offset for m in intake.messages] == [3, 4]


def _unchecked_reward(value: float) -> Event:
    return Reward.model_construct(meta=meta("r1", 9), name="reward", value=value, dimensions={})


def _unchecked_span(start: int, end: int) -> Event:
    fields = dict(llm_span("r1", 2))
    return Span.model_construct(
        **{**fields, "start_time_unix_nano": start, "end_time_unix_nano": end}
    )


def _unchecked_attempt(attempt: int) -> Event:
    event = Reward(meta=meta("r1", 9), value=1.0)
    unchecked_meta = event.meta.model_construct(**{**dict(event.meta), "attempt": attempt})
    return Reward.model_construct(**{**dict(event), "meta": unchecked_meta})


def _unchecked_token_id(token_id: int) -> Event:
    span = llm_span("r1", 2)
    assert span.llm is not None
    llm = span.llm.model_construct(**{**dict(span.llm), "response_token_ids": [token_id]})
    return Span.model_construct(**{**dict(span), "llm": llm})


@pytest.mark.parametrize(
    ("event", "words"),
    [
        (_unchecked_attempt(2**32), "less than or equal"),
        (_unchecked_token_id(2**32), "less than or equal"),
        (_unchecked_reward(math.nan), "finite"),
        (_unchecked_reward(-math.inf), "finite"),
        (_unchecked_span(2_000, 1_000), "ends before it starts"),
    ],
)
def test_nonsensical_values_written_past_the_sdk_are_invalid_events(
    event: Event, words: str
) -> None:
    topic = f"fulmen.{event.event_type}s"
    intake = _decode([_message(1, CODEC.encode(event, topic=topic), topic)])
    assert not intake.events
    assert intake.dead[0].problem == "invalid_event"
    assert words in intake.dead[0].detail


def test_a_dead_letter_keeps_a_bounded_prefix_of_a_huge_message() -> None:
    huge = b"\xc3\x01" + bytes(DEAD_LETTER_VALUE_MAX + 10)
    intake = _decode([_message(7, huge)], max_event_bytes=1000)
    (dead,) = intake.dead
    assert dead.problem == "too_large"
    assert len(dead.message.value) == 4096
    assert huge.startswith(dead.message.value)
    assert f"of {len(huge)} bytes" in dead.detail
    assert dead.source == "fulmen.spans/2/7"
    assert len(dead.row()["value"]) == 4096  # type: ignore[arg-type]


def test_a_huge_key_is_too_large_and_its_dead_letter_keeps_a_prefix_of_it() -> None:
    span = CODEC.encode(llm_span("r1", 1), topic="fulmen.spans")
    message = Received("fulmen.spans", 0, 3, b"k" * 2_000_000, span)
    (dead,) = _decode([message], max_event_bytes=1_000_000).dead
    assert dead.problem == "too_large"
    assert dead.message.key == b"k" * 4096
    assert dead.message.value == span


def test_a_message_read_twice_in_a_batch_counts_once() -> None:
    span = CODEC.encode(llm_span("r1", 1), topic="fulmen.spans")
    messages = [_message(1, b"garbage"), _message(2, span)]
    intake = _decode([*messages, *messages])
    assert [d.message.offset for d in intake.dead] == [1]
    assert [m.offset for m in intake.messages] == [2]
    assert intake.duplicates == 2
