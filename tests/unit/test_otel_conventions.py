"""OpenInference and OpenLLMetry attributes read as GenAI ones, and the processor's scopes."""

from __future__ import annotations

import json
from pathlib import Path

from opentelemetry.sdk.trace import TracerProvider

import fulmen
from fulmen.producers import FulmenSettings, InProcessBus
from fulmen.producers._otel_conventions import as_genai
from fulmen.producers.otel import FulmenSpanProcessor
from fulmen.schemas import SingleObjectCodec, Span


def test_openinference_llm_span() -> None:
    genai = as_genai(
        {
            "openinference.span.kind": "LLM",
            "llm.model_name": "calc",
            "llm.provider": "openai",
            "llm.invocation_parameters": '{"temperature": 0.5, "max_tokens": 40}',
            "llm.token_count.prompt": 12,
            "llm.token_count.completion": 3,
            "llm.input_messages.1.message.role": "user",
            "llm.input_messages.1.message.content": "2 + 2?",
            "llm.input_messages.0.message.role": "system",
            "llm.input_messages.0.message.content": "Be brief.",
            "llm.output_messages.0.message.role": "assistant",
            "llm.output_messages.0.message.content": "4",
        }
    )
    assert genai["gen_ai.operation.name"] == "chat"
    assert genai["gen_ai.request.model"] == "calc"
    assert genai["gen_ai.provider.name"] == "openai"
    assert (genai["gen_ai.request.temperature"], genai["gen_ai.request.max_tokens"]) == (0.5, 40)
    assert (genai["gen_ai.usage.input_tokens"], genai["gen_ai.usage.output_tokens"]) == (12, 3)
    assert json.loads(genai["gen_ai.input.messages"]) == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "2 + 2?"},
    ]
    assert json.loads(genai["gen_ai.output.messages"]) == [{"role": "assistant", "content": "4"}]


def test_openinference_tool_span() -> None:
    genai = as_genai(
        {
            "openinference.span.kind": "TOOL",
            "tool.name": "calculator",
            "tool_call.id": "call_1",
            "input.value": '{"expression": "2 + 2"}',
            "output.value": "four",
        }
    )
    assert genai["gen_ai.operation.name"] == "execute_tool"
    assert genai["gen_ai.tool.name"] == "calculator"
    assert genai["gen_ai.tool.call.id"] == "call_1"
    assert genai["gen_ai.tool.call.arguments"] == '{"expression": "2 + 2"}'
    assert genai["gen_ai.tool.call.result"] == '"four"'  # text that is not JSON, quoted


def test_openllmetry_chat_and_tool_spans() -> None:
    chat = as_genai(
        {
            "llm.request.type": "chat",
            "gen_ai.system": "openai",
            "gen_ai.request.model": "calc",
            "gen_ai.usage.prompt_tokens": 7,
            "gen_ai.usage.completion_tokens": 2,
            "gen_ai.prompt.0.role": "user",
            "gen_ai.prompt.0.content": "2 + 2?",
            "gen_ai.completion.0.role": "assistant",
            "gen_ai.completion.0.content": "4",
            "gen_ai.completion.0.finish_reason": "stop",
        }
    )
    assert chat["gen_ai.operation.name"] == "chat"
    assert (chat["gen_ai.usage.input_tokens"], chat["gen_ai.usage.output_tokens"]) == (7, 2)
    assert json.loads(chat["gen_ai.input.messages"]) == [{"role": "user", "content": "2 + 2?"}]
    assert chat["gen_ai.response.finish_reasons"] == ["stop"]
    tool = as_genai(
        {
            "traceloop.span.kind": "tool",
            "traceloop.entity.name": "calculator",
            "traceloop.entity.input": '{"args": ["2 + 2"]}',
            "traceloop.entity.output": "4.0",
        }
    )
    assert tool["gen_ai.operation.name"] == "execute_tool"
    assert tool["gen_ai.tool.name"] == "calculator"
    assert tool["gen_ai.tool.call.result"] == "4.0"


def test_genai_spans_are_taken_as_they_are() -> None:
    attributes = {"gen_ai.operation.name": "chat", "openinference.span.kind": "TOOL"}
    assert as_genai(attributes) == attributes


def test_processor_scopes_and_nesting(tmp_path: Path) -> None:
    bus = InProcessBus()
    fulmen.configure(
        FulmenSettings(producer={"spill_dir": tmp_path / "spill", "capture_openai": False}),
        bus=bus,
    )
    provider = TracerProvider()
    provider.add_span_processor(FulmenSpanProcessor(scopes={"wanted"}))
    wanted, other = provider.get_tracer("wanted"), provider.get_tracer("other")
    try:
        tool_attributes = {"openinference.span.kind": "TOOL", "tool.name": "calculator"}
        with (
            fulmen.rollout(task_id="t"),
            other.start_as_current_span("runtime"),  # not recorded: another scope
            wanted.start_as_current_span("execute_tool calculator", attributes=tool_attributes),
        ):
            fulmen.step(lambda: None)()  # nests under the OTel span
        assert fulmen.get_producer().flush(5)
    finally:
        provider.shutdown()
        fulmen.shutdown()
    codec = SingleObjectCodec()
    decoded = [
        codec.decode(m.value, topic="fulmen.spans")
        for m in bus.read("fulmen.spans", 0, max_messages=100, timeout_s=0)
    ]
    spans = {s.name: s for s in decoded if isinstance(s, Span)}
    assert set(spans) == {"fulmen.rollout", "execute_tool calculator", "<lambda>"}
    tool = spans["execute_tool calculator"]
    assert tool.parent_span_id == spans["fulmen.rollout"].span_id  # its OTel parent is skipped
    assert tool.tool is not None
    assert tool.tool.name == "calculator"
    assert spans["<lambda>"].parent_span_id == tool.span_id
