"""`emit_feedback`: thumbs up or down on a rollout (or one of its LLM calls), from a person
or a judge, with an optional corrected answer: what DPO and KTO train on."""

from __future__ import annotations

import re
from typing import Literal, get_args

from fulmen.producers._global import get_producer
from fulmen.producers._rewards import rated_meta
from fulmen.schemas import EventMeta, Feedback, FeedbackSource

Thumb = Literal["up", "down"]
_SPAN_ID = re.compile(r"^[0-9a-f]{16}$")


def feedback_event(
    meta: EventMeta,
    thumb: Thumb,
    *,
    span_id: str | None = None,
    correction: str | None = None,
    source: FeedbackSource = "human",
    comment: str | None = None,
) -> Feedback:
    """The `Feedback` event of these arguments (the SDK's and the gateway's one rule).

    Raises:
        ValueError: `thumb` is not `up` or `down`, `source` not `human` or `judge`,
            `span_id` not a span id (16 lower-case hex digits), or `correction` is blank.
    """
    if thumb not in get_args(Thumb):
        raise ValueError(f"feedback: thumb must be 'up' or 'down', got {thumb!r}")
    if source not in get_args(FeedbackSource):
        raise ValueError(f"feedback: source must be 'human' or 'judge', got {source!r}")
    if span_id is not None and not _SPAN_ID.match(span_id):
        raise ValueError(f"feedback: span_id must be 16 lower-case hex digits, got {span_id!r}")
    if correction is not None and not correction.strip():
        raise ValueError("feedback: correction is blank; leave it out (None) when there is none")
    return Feedback(
        meta=meta,
        thumbs_up=thumb == "up",
        source=source,
        span_id=span_id,
        correction=correction,
        comment=comment,
    )


def emit_feedback(
    thumb: Thumb,
    *,
    correction: str | None = None,
    source: FeedbackSource = "human",
    comment: str | None = None,
    span_id: str | None = None,
    rollout_id: str | None = None,
    attempt: int = 1,
) -> None:
    """Rate a rollout's answer `up` or `down`, optionally with the `correction` it should
    have given. Inside a rollout it rates that rollout (or its LLM call `span_id`); feedback
    that comes later (a user's thumbs, a reviewer, a judge) passes `rollout_id=` (and
    `attempt=`). Without `span_id` it rates the rollout's answer, its last LLM call.

    Raises:
        NoActiveRollout: outside a rollout without `rollout_id`.
        ValueError: an argument out of its range (see `feedback_event`), an empty
            `rollout_id` or an `attempt` below 1 — programming errors, not delivery problems.
    """
    if rollout_id is not None and not rollout_id:
        raise ValueError("emit_feedback: rollout_id is empty")
    if attempt < 1:
        raise ValueError(f"emit_feedback: attempt must be 1 or more, got {attempt}")
    meta = rated_meta("emit_feedback", rollout_id, attempt)
    event = feedback_event(
        meta, thumb, span_id=span_id, correction=correction, source=source, comment=comment
    )
    get_producer().emit(event)
