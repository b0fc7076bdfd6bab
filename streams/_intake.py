"""What comes off an input topic: events with the offsets they were read at, and dead letters.

Both the Faust worker and the embedded runner decode through `decode_batch`, so an event is
valid or invalid for the same reasons whichever way it travelled.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import pyarrow as pa

from fulmen.kafka import TopicSettings
from fulmen.schemas import EVENT_MODELS, Codec, DecodeError, DecodeProblem, Event, EventType
from fulmen.store import TABLES, Source

StreamProblem = Literal["too_large", "wrong_topic", "rollout_too_large"]
DeadLetterProblem = DecodeProblem | StreamProblem
"""Why a message is a dead letter. Schema-invalid events, missing ids included (the contract
requires non-empty `event_id` and `rollout_id`), non-finite rewards and spans that end before
they start, are `invalid_event`; an event on another kind's topic is `wrong_topic`; an event
that would take its rollout's buffered events past the worker's budget is
`rollout_too_large`."""
DEAD_LETTER_PROBLEMS: tuple[str, ...] = (*get_args(DecodeProblem), *get_args(StreamProblem))

DEAD_LETTER_VALUE_MAX = 900_000
"""A dead letter keeps its message's bytes up to this size; a larger one keeps a prefix (by
reference: its topic, partition and offset say where the whole message is). It stays under
the broker's default `max.message.bytes` (1,048,588) with the headers, so re-publishing a
dead letter can never be refused for its size."""
_PREFIX_BYTES = 4096
_DETAIL_CHARS = 2000


def topic_kinds(topics: TopicSettings) -> dict[str, frozenset[EventType]]:
    """Which event types belong on each of Fulmen's topics (the control topic carries
    versions, release decisions and serving replicas' acknowledgements)."""
    kinds: dict[str, set[EventType]] = {}
    for event_type in EVENT_MODELS:
        kinds.setdefault(topics.for_event(event_type), set()).add(event_type)
    return {topic: frozenset(types) for topic, types in kinds.items()}


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
    """A message that is not a usable event, with why. Its bytes are kept as they came up to
    `DEAD_LETTER_VALUE_MAX`, else a prefix (`truncated`)."""

    message: Received
    problem: DeadLetterProblem
    detail: str

    @staticmethod
    def of(message: Received, problem: DeadLetterProblem, detail: str) -> DeadLetter:
        """The dead letter of `message`, its bytes and detail bounded."""
        detail = detail if len(detail) <= _DETAIL_CHARS else detail[:_DETAIL_CHARS] + "…"
        size = len(message.value)
        if size > DEAD_LETTER_VALUE_MAX:
            detail += f" (the dead letter keeps the first {_PREFIX_BYTES} of {size} bytes)"
            message = dataclasses.replace(message, value=message.value[:_PREFIX_BYTES])
        if len(message.key) > _PREFIX_BYTES:
            detail += f" (and the first {_PREFIX_BYTES} of its key's {len(message.key)} bytes)"
            message = dataclasses.replace(message, key=message.key[:_PREFIX_BYTES])
        return DeadLetter(message, problem, detail)

    @property
    def source(self) -> str:
        """`topic/partition/offset` of the message."""
        return f"{self.message.topic}/{self.message.partition}/{self.message.offset}"

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


def dead_letters_table(dead: Sequence[DeadLetter]) -> pa.Table:
    """Dead letters as an Arrow batch for the store's `dead_letters` table."""
    return pa.Table.from_pylist([d.row() for d in dead], schema=TABLES["dead_letters"])


@dataclass
class Intake:
    """A decoded batch: new events in read order, each with the message it came in, the
    dead letters, and how many messages were duplicates of events already seen."""

    events: list[Event] = field(default_factory=list)
    fields: list[dict[str, Any]] = field(default_factory=list)
    """Each event's fields as Avro read them (`Decoded.fields`), for columnar writes."""
    messages: list[Received] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    duplicates: int = 0

    @property
    def sources(self) -> list[Source]:
        """(partition, offset) of each event."""
        return [(message.partition, message.offset) for message in self.messages]

    def refuse(self, refused: Mapping[int, str], problem: DeadLetterProblem) -> None:
        """Turn the events at the indices in `refused` into dead letters, with its details."""
        kept = [i for i in range(len(self.events)) if i not in refused]
        self.dead += [DeadLetter.of(self.messages[i], problem, refused[i]) for i in sorted(refused)]
        self.events = [self.events[i] for i in kept]
        self.fields = [self.fields[i] for i in kept]
        self.messages = [self.messages[i] for i in kept]


def decode_batch(
    messages: Sequence[Received],
    codec: Codec,
    *,
    kinds: Mapping[str, frozenset[EventType]],
    max_event_bytes: int,
    is_new: Callable[[Event], bool],
) -> Intake:
    """Decode `messages`; an event is kept when it is of the kind its topic carries
    (`kinds`: topic → event type), `is_new` says so and it is not repeated earlier in the
    batch. A message read twice in the batch counts once. Nothing raises: what cannot be used
    becomes a `DeadLetter`."""
    intake = Intake()
    in_batch: set[str] = set()
    read: set[tuple[str, int, int]] = set()
    for message in messages:
        where = (message.topic, message.partition, message.offset)
        if where in read:  # delivered twice in one batch (a consumer seek can do that)
            intake.duplicates += 1
            continue
        read.add(where)
        size = len(message.key) + len(message.value)
        if size > max_event_bytes:
            detail = f"{size} bytes (key and value) > limit {max_event_bytes}"
            intake.dead.append(DeadLetter.of(message, "too_large", detail))
            continue
        try:
            decoded = codec.decode_fields(message.value, topic=message.topic)
        except DecodeError as error:
            intake.dead.append(DeadLetter.of(message, error.problem, error.detail))
            continue
        event = decoded.event
        expected = kinds.get(message.topic, frozenset())
        if event.event_type not in expected:
            carries = " or ".join(sorted(expected)) or "no events"
            detail = f"a {event.event_type} event on {message.topic}, which carries {carries}"
            intake.dead.append(DeadLetter.of(message, "wrong_topic", detail))
            continue
        if event.meta.event_id in in_batch or not is_new(event):
            intake.duplicates += 1
            continue
        in_batch.add(event.meta.event_id)
        intake.events.append(event)
        intake.fields.append(decoded.fields)
        intake.messages.append(message)
    return intake
