"""The OpenAI Agents SDK: a tracing processor that records agent runs, function-tool calls,
handoffs and guardrails as spans of the rollout in progress (needs `openai-agents`).

    from agents import add_trace_processor
    add_trace_processor(FulmenTracingProcessor())

Model calls go through the `openai` client and are recorded by the SDK's OpenAI capture
(token ids and logprobs when the server returns them) under the agent span that made them;
the SDK's own generation and response spans are therefore not recorded again. Run the
agents on the Chat Completions API (`set_default_openai_api("chat_completions")` or an
`OpenAIChatCompletionsModel`): the capture and the policy server speak that API.
"""

from __future__ import annotations

from typing import Any

from agents.tracing import Span, Trace, TracingProcessor
from agents.tracing.span_data import (
    AgentSpanData,
    CustomSpanData,
    FunctionSpanData,
    GuardrailSpanData,
    HandoffSpanData,
)

from fulmen.producers._context import to_json
from fulmen.producers.integrations._framework_spans import FrameworkSpans
from fulmen.schemas import ToolCall


class FulmenTracingProcessor(TracingProcessor):
    """Register once per process (`agents.add_trace_processor`); spans of runs outside a
    Fulmen rollout are ignored. The SDK calls `on_span_start` in the agent's own context."""

    def __init__(self) -> None:
        self._spans = FrameworkSpans()

    def on_trace_start(self, trace: Trace) -> None:
        pass

    def on_trace_end(self, trace: Trace) -> None:
        pass

    def on_span_start(self, span: Span[Any]) -> None:
        name = _span_name(span.span_data)
        if name is not None:
            self._spans.open(span.span_id, name=name, parent_key=span.parent_id)

    def on_span_end(self, span: Span[Any]) -> None:
        data = span.span_data
        error = None if span.error is None else span.error.get("message") or "error"
        tool = None
        if isinstance(data, FunctionSpanData):
            tool = ToolCall(
                name=data.name,
                arguments=data.input or "{}",
                result=to_json(data.output),
            )
        self._spans.close(span.span_id, error=error, tool=tool, name=_span_name(data))

    def shutdown(self) -> None:
        pass

    def force_flush(self) -> None:
        pass


def _span_name(data: Any) -> str | None:
    """The Fulmen span name of an SDK span; None for the spans not recorded here."""
    if isinstance(data, AgentSpanData):
        return f"invoke_agent {data.name}"
    if isinstance(data, FunctionSpanData):
        return f"execute_tool {data.name}"
    if isinstance(data, HandoffSpanData):
        return f"handoff {data.from_agent} -> {data.to_agent}"
    if isinstance(data, GuardrailSpanData):
        return f"guardrail {data.name}"
    if isinstance(data, CustomSpanData):
        return data.name
    return None
