"""What comes off an input topic: events with the offsets they were read at, and dead letters.

Both the Faust worker and the embedded runner decode through `decode_batch`, so an event is
valid or invalid for the same reasons whichever way it travelled.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, get_args

from fulmen.schemas import Codec, DecodeError, DecodeProblem, Event
from fulmen.store import Source

DeadLetterProblem = DecodeProblem | Literal["too_large"]
"""Why a message is a dead letter. Schema-invalid events, missing ids included (the contract
requires non-empty `event_id` and `rollout_id`), are `invalid_event`."""
DEAD_LETTER_PROBLEMS: tuple[str, ...] = (*get_args(DecodeProblem), "too_large")


@dataclass(frozen=True)
class Received:
    """One message as read from a topic."""

    topic: str
    partition: int
    offset: int
    key: bytes
    value: bytes


@dataclass(frozen=True)
class DeadLetter:
    """A message that is not a usable event, with why; its bytes are kept as they came."""

    message: Received
    problem: DeadLetterProblem
    detail: str

    def row(self) -> dict[str, object]:
        """The message as a row of the store's `dead_letters` table."""
        return {
            "received_at": int(time.time() * 1000),
            "topic": self.message.topic,
            "partition": self.message.partition,
            "offset": self.message.offset,
            "key": self.message.key,
            "value": self.message.value,
            "problem": self.problem,
            "detail": self.detail,
        }


@dataclass
class Intake:
    """A decoded batch: new events in read order, each with its (partition, offset), the
    dead letters, and how many messages were duplicates of events already seen."""

    events: list[Event] = field(default_factory=list)
    sources: list[Source] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    duplicates: int = 0


def decode_batch(
    messages: Sequence[Received],
    codec: Codec,
    *,
    max_event_bytes: int,
    is_new: Callable[[Event], bool],
) -> Intake:
    """Decode `messages`; an event is kept when `is_new` says so and it is not repeated
    earlier in the batch. Nothing raises: what cannot be used becomes a `DeadLetter`."""
    intake = Intake()
    in_batch: set[str] = set()
    for message in messages:
        if len(message.value) > max_event_bytes:
            detail = f"{len(message.value)} bytes > limit {max_event_bytes}"
            intake.dead.append(DeadLetter(message, "too_large", detail))
            continue
        try:
            event = codec.decode(message.value, topic=message.topic)
        except DecodeError as error:
            intake.dead.append(DeadLetter(message, error.problem, error.detail))
            continue
        if event.meta.event_id in in_batch or not is_new(event):
            intake.duplicates += 1
            continue
        in_batch.add(event.meta.event_id)
        intake.events.append(event)
        intake.sources.append((message.partition, message.offset))
    return intake
