"""An OpenTelemetry span processor (needs the `otel` extra): spans of any OTel-instrumented
framework (LangChain, the OpenAI Agents SDK, …) become Fulmen spans of the rollout they ran in.

The rollout is taken from the Fulmen context when the span starts. GenAI semantic-convention
attributes (`gen_ai.*`) fill `llm` / `tool`, as do OpenInference's and OpenLLMetry's
(`_otel_conventions.py`); the rest land in the typed attribute maps.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace import Span as OtelSpan
from opentelemetry.trace import SpanKind as OtelSpanKind

from fulmen.producers._context import ActiveRollout, current_rollout, current_span_id, to_json
from fulmen.producers._otel_conventions import as_genai
from fulmen.producers._spans import emit_span
from fulmen.schemas import Attributes, LlmCall, SpanKind, ToolCall

_KINDS: dict[OtelSpanKind, SpanKind] = {
    OtelSpanKind.INTERNAL: "INTERNAL",
    OtelSpanKind.SERVER: "SERVER",
    OtelSpanKind.CLIENT: "CLIENT",
    OtelSpanKind.PRODUCER: "PRODUCER",
    OtelSpanKind.CONSUMER: "CONSUMER",
}
_INFERENCE_OPERATIONS = {"chat", "text_completion", "generate_content"}


class FulmenSpanProcessor(SpanProcessor):
    """Add to a `TracerProvider` with `provider.add_span_processor(FulmenSpanProcessor())`.

    Spans that start outside a Fulmen rollout are ignored, and with `scopes` those of other
    instrumentation scopes (tracer names) too. Span ids and parent links are kept (a
    framework's root span nests under the Fulmen span current when it started), and every
    span joins the rollout's trace. While a span is open it is the current Fulmen span of the
    context that started it, so LLM calls the SDK captures there nest under it.
    """

    def __init__(self, *, scopes: Collection[str] | None = None) -> None:
        self._rollouts: dict[int, tuple[ActiveRollout, str | None]] = {}
        self._lock = threading.Lock()
        self._scopes = None if scopes is None else frozenset(scopes)

    def on_start(self, span: OtelSpan, parent_context: Context | None = None) -> None:
        active = current_rollout.get()
        if active is None or not self._in_scope(span):
            return
        with self._lock:
            self._rollouts[span.context.span_id] = (active, current_span_id.get())
        current_span_id.set(f"{span.context.span_id:016x}")

    def _in_scope(self, span: ReadableSpan) -> bool:
        scope = span.instrumentation_scope
        return self._scopes is None or (scope is not None and scope.name in self._scopes)

    def on_end(self, span: ReadableSpan) -> None:
        context = span.context
        if context is None:
            return
        with self._lock:
            started = self._rollouts.pop(context.span_id, None)
            recorded_parent = span.parent is not None and span.parent.span_id in self._rollouts
        if started is None:
            return
        active, fulmen_parent = started
        if current_span_id.get() == f"{context.span_id:016x}":  # as on_start found it
            current_span_id.set(fulmen_parent)
        attributes = as_genai(span.attributes or {})
        error = span.status.description or "error" if not span.status.is_ok else None
        emit_span(
            active,
            name=span.name,
            span_id=f"{context.span_id:016x}",
            # A span whose OTel parent is not recorded here (a root, or one outside `scopes`)
            # nests under the Fulmen span it started in (the rollout's root, a @step or
            # @tool), so the rollout's trace keeps a single root.
            parent_span_id=(
                f"{span.parent.span_id:016x}"
                if recorded_parent and span.parent is not None
                else fulmen_parent
            ),
            start_ns=span.start_time or 0,
            end_ns=span.end_time or 0,
            kind=_KINDS.get(span.kind, "INTERNAL"),
            error=error,
            attributes=split_attributes(
                {k: v for k, v in attributes.items() if not k.startswith("gen_ai.")}
            ),
            llm=_llm_call(attributes),
            tool=_tool_call(attributes),
        )

    def shutdown(self) -> None:
        with self._lock:
            self._rollouts.clear()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def split_attributes(attributes: Mapping[str, Any]) -> Attributes:
    """OTel attribute values into the typed maps; sequences become JSON strings."""
    strings: dict[str, str] = {}
    ints: dict[str, int] = {}
    doubles: dict[str, float] = {}
    bools: dict[str, bool] = {}
    for key, value in attributes.items():
        if isinstance(value, bool):
            bools[key] = value
        elif isinstance(value, int):
            ints[key] = value
        elif isinstance(value, float):
            doubles[key] = value
        elif isinstance(value, str):
            strings[key] = value
        else:
            strings[key] = to_json(list(value) if isinstance(value, Sequence) else value)
    return Attributes(strings=strings, ints=ints, doubles=doubles, bools=bools)


def _llm_call(attributes: Mapping[str, Any]) -> LlmCall | None:
    operation = attributes.get("gen_ai.operation.name")
    if operation not in _INFERENCE_OPERATIONS:
        return None
    finish = attributes.get("gen_ai.response.finish_reasons") or ()
    return LlmCall(
        operation_name=str(operation),
        provider_name=str(
            attributes.get("gen_ai.provider.name", attributes.get("gen_ai.system", ""))
        ),
        request_model=str(attributes.get("gen_ai.request.model", "")),
        response_model=_str_or_none(attributes.get("gen_ai.response.model")),
        response_id=_str_or_none(attributes.get("gen_ai.response.id")),
        temperature=_number_or_none(attributes.get("gen_ai.request.temperature")),
        max_tokens=_int_or_none(attributes.get("gen_ai.request.max_tokens")),
        input_tokens=_int_or_none(attributes.get("gen_ai.usage.input_tokens")),
        output_tokens=_int_or_none(attributes.get("gen_ai.usage.output_tokens")),
        finish_reasons=[str(reason) for reason in finish],
        input_messages=str(attributes.get("gen_ai.input.messages", "[]")),
        output_messages=str(attributes.get("gen_ai.output.messages", "[]")),
        tool_definitions=str(attributes.get("gen_ai.tool.definitions", "[]")),
    )


def _tool_call(attributes: Mapping[str, Any]) -> ToolCall | None:
    if attributes.get("gen_ai.operation.name") != "execute_tool":
        return None
    return ToolCall(
        name=str(attributes.get("gen_ai.tool.name", "")),
        call_id=_str_or_none(attributes.get("gen_ai.tool.call.id")),
        type=str(attributes.get("gen_ai.tool.type", "function")),
        arguments=str(attributes.get("gen_ai.tool.call.arguments", "{}")),
        result=str(attributes.get("gen_ai.tool.call.result", "null")),
    )


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _number_or_none(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
