"""Emitting one span of the rollout in progress: the path every capture shares."""

from __future__ import annotations

from fulmen.producers._context import ActiveRollout, current_rollout, current_span_id
from fulmen.producers._global import get_producer
from fulmen.producers._producer import Producer
from fulmen.producers._resources import Resources
from fulmen.schemas import Attributes, LlmCall, Span, SpanKind, SpanStatus, ToolCall


def emit_span(
    active: ActiveRollout,
    *,
    name: str,
    span_id: str,
    parent_span_id: str | None,
    start_ns: int,
    end_ns: int,
    kind: SpanKind = "INTERNAL",
    error: str | None = None,
    attributes: Attributes | None = None,
    llm: LlmCall | None = None,
    tool: ToolCall | None = None,
    producer: Producer | None = None,
    resources: Resources | None = None,
) -> None:
    """Emit a span of `active` through `producer` (default: the process-wide one), stamped
    with its envelope and the version ids of `resources` (default: those in force)."""
    producer = producer or get_producer()
    if llm is not None:
        active.llm_span_ids.append(span_id)
    meta = producer.meta(
        active.rollout_id, active.attempt, agent_name=active.agent_name, resources=resources
    )
    producer.emit(
        Span(
            meta=meta,
            trace_id=active.trace_id,
            span_id=span_id,
            parent_span_id=parent_span_id,
            name=name,
            kind=kind,
            start_time_unix_nano=start_ns,
            # Captures time a call by the wall clock, which may step back mid-call (NTP).
            end_time_unix_nano=max(end_ns, start_ns),
            status=SpanStatus(code="ERROR", message=error) if error else SpanStatus(code="OK"),
            attributes=attributes or Attributes(),
            llm=llm,
            tool=tool,
        )
    )


def parent_of_new_span() -> tuple[ActiveRollout | None, str | None]:
    """The rollout in progress (None outside one) and the span a new span nests under."""
    return current_rollout.get(), current_span_id.get()
