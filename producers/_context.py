"""The rollout in progress and the span under which new spans nest, as context variables
(so they follow asyncio tasks; threads started inside a rollout need `contextvars.copy_context`)."""

from __future__ import annotations

import json
import random
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from fulmen.errors import FulmenError


class NoActiveRollout(FulmenError):
    """A rollout-scoped call (e.g. `emit_reward` without `rollout_id=`) ran outside a rollout."""


@dataclass(frozen=True)
class ActiveRollout:
    rollout_id: str
    attempt: int
    task_id: str
    trace_id: str
    root_span_id: str
    agent_name: str | None
    served: list[str] = field(default_factory=list, compare=False)
    """The model version that served each LLM call so far, in call order."""
    llm_span_ids: list[str] = field(default_factory=list, compare=False)
    """The span id of each captured LLM call so far, in call order."""


current_rollout: ContextVar[ActiveRollout | None] = ContextVar("fulmen_rollout", default=None)
current_span_id: ContextVar[str | None] = ContextVar("fulmen_span", default=None)


def new_span_id() -> str:
    """16 hex digits, never all zero (W3C trace context)."""
    return f"{_random_bits(64):016x}"


def new_trace_id() -> str:
    """32 hex digits, never all zero (W3C trace context)."""
    return f"{_random_bits(128):032x}"


def _random_bits(bits: int) -> int:
    # The random module, not `secrets`, as OpenTelemetry's id generator does: ids must be
    # unique, not unguessable. os.urandom releases the GIL, and in the gateway the producer's
    # sender thread then took it mid-request: 14 us at the median, 110 us on average, where
    # this costs well under one (docs/gateway.md). random is reseeded in forked children.
    while not (value := random.getrandbits(bits)):
        pass
    return value


def to_json(value: Any) -> str:
    """JSON for logging what an agent passed or got: pydantic models dumped, the rest by repr."""
    return json.dumps(value, default=_jsonable, ensure_ascii=False)


def _jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_none=True)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return repr(value)
