"""`emit_reward`: score the rollout in progress, one of its spans, or a past rollout;
`last_llm_span_id` names the LLM call just made, for a reward of that step alone."""

from __future__ import annotations

import math

from fulmen.errors import FulmenError
from fulmen.producers._context import NoActiveRollout, current_rollout
from fulmen.producers._global import get_producer
from fulmen.producers._served import rollout_meta
from fulmen.schemas import EventMeta, Reward, RewardSource


class RewardError(FulmenError):
    """A `rollout(reward=...)` function raised, or returned something other than a finite
    real number; the original exception, if any, is the `__cause__`."""


def last_llm_span_id() -> str | None:
    """The span id of the rollout in progress's latest captured LLM call, None before its
    first (or outside a rollout): `emit_reward(value, span_id=last_llm_span_id())` scores
    that call alone, for per-step credit (`per_call`, `discounted`)."""
    active = current_rollout.get()
    return active.llm_span_ids[-1] if active is not None and active.llm_span_ids else None


def rated_meta(caller: str, rollout_id: str | None, attempt: int) -> EventMeta:
    """The envelope of an event that rates a rollout: the rollout in progress when
    `rollout_id` is None (raising `NoActiveRollout` outside one), else `rollout_id`'s
    `attempt` (a judge or a person rating later)."""
    producer = get_producer()
    if rollout_id is not None:
        return producer.meta(rollout_id, attempt)
    active = current_rollout.get()
    if active is None:
        raise NoActiveRollout(f"{caller} outside a rollout: pass rollout_id=")
    return rollout_meta(producer, active)


def emit_reward(
    value: float,
    *,
    name: str = "reward",
    dimensions: dict[str, float] | None = None,
    source: RewardSource = "programmatic",
    span_id: str | None = None,
    comment: str | None = None,
    rollout_id: str | None = None,
    attempt: int = 1,
) -> None:
    """Emit a reward. Inside a rollout it scores that rollout (or `span_id` of it); a judge or
    a human scoring later passes `rollout_id=` (and `attempt=`). Raises `NoActiveRollout`
    when neither applies, and `ValueError` when `value` or a dimension is NaN or infinite
    (it would poison every mean and gradient built on it) — programming errors, not
    delivery problems."""
    named = {f"dimensions[{k!r}]": v for k, v in (dimensions or {}).items()}
    for label, number in {"value": value, **named}.items():
        if not math.isfinite(number):
            raise ValueError(f"emit_reward: {label} must be a finite number, got {number!r}")
    get_producer().emit(
        Reward(
            meta=rated_meta("emit_reward", rollout_id, attempt),
            name=name,
            value=value,
            dimensions=dimensions or {},
            source=source,
            span_id=span_id,
            comment=comment,
        )
    )
