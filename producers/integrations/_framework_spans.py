"""Spans a framework opens and closes through callbacks, keyed by the framework's own run or
span ids: the bookkeeping every callback-style integration shares.

`open` nests the new span under its framework parent when that one is open here, else under
the Fulmen span current in the caller's context (the rollout's root, a `@step`, a `@tool`),
and makes it the current Fulmen span, so LLM calls captured by the OpenAI client capture in
the same context nest under the framework's step. Outside a rollout nothing is recorded.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable
from dataclasses import dataclass

from fulmen.producers._context import ActiveRollout, current_span_id, new_span_id
from fulmen.producers._spans import emit_span, parent_of_new_span
from fulmen.schemas import Attributes, LlmCall, ToolCall


@dataclass(frozen=True, slots=True)
class _Open:
    active: ActiveRollout
    span_id: str
    parent_span_id: str | None
    name: str
    start_ns: int


class FrameworkSpans:
    """Open framework spans; thread-safe (frameworks call back from worker threads)."""

    def __init__(self) -> None:
        self._open: dict[Hashable, _Open] = {}
        self._lock = threading.Lock()

    def open(self, key: Hashable, *, name: str, parent_key: Hashable | None = None) -> None:
        """Start a span for the framework's `key`; a no-op outside a rollout."""
        with self._lock:
            parent = self._open.get(parent_key) if parent_key is not None else None
        active: ActiveRollout | None
        parent_span_id: str | None
        if parent is not None:
            active, parent_span_id = parent.active, parent.span_id
        else:
            active, parent_span_id = parent_of_new_span()
        if active is None:
            return
        span = _Open(active, new_span_id(), parent_span_id, name, time.time_ns())
        with self._lock:
            self._open[key] = span
        current_span_id.set(span.span_id)

    def close(
        self,
        key: Hashable,
        *,
        error: str | None = None,
        tool: ToolCall | None = None,
        llm: LlmCall | None = None,
        attributes: Attributes | None = None,
        name: str | None = None,
    ) -> None:
        """Emit the span opened for `key` (nothing when none was)."""
        with self._lock:
            span = self._open.pop(key, None)
        if span is None:
            return
        if current_span_id.get() == span.span_id:  # leave the context as `open` found it
            current_span_id.set(span.parent_span_id)
        emit_span(
            span.active,
            name=name or span.name,
            span_id=span.span_id,
            parent_span_id=span.parent_span_id,
            start_ns=span.start_ns,
            end_ns=time.time_ns(),
            error=error,
            attributes=attributes,
            llm=llm,
            tool=tool,
        )
