"""The rollout in progress and the span under which new spans nest, as context variables
(so they follow asyncio tasks; threads started inside a rollout need `contextvars.copy_context`)."""

from __future__ import annotations

import json
import secrets
from contextvars import ContextVar
from dataclasses import dataclass
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


current_rollout: ContextVar[ActiveRollout | None] = ContextVar("fulmen_rollout", default=None)
current_span_id: ContextVar[str | None] = ContextVar("fulmen_span", default=None)


def new_span_id() -> str:
    return secrets.token_hex(8)


def new_trace_id() -> str:
    return secrets.token_hex(16)


def to_json(value: Any) -> str:
    """JSON for logging what an agent passed or got: pydantic models dumped, the rest by repr."""
    return json.dumps(value, default=_jsonable, ensure_ascii=False)


def _jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_none=True)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return repr(value)
