"""`FulmenSpanProcessor`: OTel spans started inside a rollout become Fulmen spans of it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer

import fulmen
from fulmen.producers import FulmenSettings, InProcessBus
from fulmen.producers.otel import FulmenSpanProcessor, split_attributes
from fulmen.schemas import Attributes, SingleObjectCodec, Span


class Capture:
    def __init__(self, bus: InProcessBus) -> None:
        self.bus = bus

    def spans(self) -> list[Span]:
        assert fulmen.get_producer().flush(5)
        codec = SingleObjectCodec()
        messages = self.bus.read("fulmen.spans", 0, max_messages=10_000, timeout_s=0)
        spans = [codec.decode(m.value, topic="fulmen.spans") for m in messages]
        return [span for span in spans if isinstance(span, Span)]

    def named(self, name: str) -> Span:
        (span,) = [span for span in self.spans() if span.name == name]
        return span


@pytest.fixture
def capture(tmp_path: Path) -> Iterator[Capture]:
    bus = InProcessBus()
    settings = FulmenSettings(producer={"spill_dir": tmp_path / "spill", "capture_openai": False})
    fulmen.configure(settings, bus=bus)
    yield Capture(bus)
    fulmen.shutdown()


@pytest.fixture
def tracer() -> Iterator[Tracer]:
    provider = TracerProvider()
    provider.add_span_processor(FulmenSpanProcessor())
    yield provider.get_tracer("fulmen-test")
    provider.shutdown()


def hex_span_id(span_id: int) -> str:
    return f"{span_id:016x}"


def test_chat_span_becomes_an_llm_call(capture: Capture, tracer: Tracer) -> None:
    messages = [{"role": "user", "parts": [{"type": "text", "content": "2 + 2?"}]}]
    output = [{"role": "assistant", "parts": [{"type": "text", "content": "4"}]}]
    with fulmen.rollout(task_id="t"):
        with tracer.start_as_current_span("chat gpt-x", kind=SpanKind.CLIENT) as otel_span:
            otel_span.set_attributes(
                {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.provider.name": "openai",
                    "gen_ai.request.model": "gpt-x",
                    "gen_ai.response.model": "gpt-x-2025",
                    "gen_ai.response.id": "resp-1",
                    "gen_ai.request.temperature": 0.2,
                    "gen_ai.request.max_tokens": 32,
                    "gen_ai.usage.input_tokens": 11,
                    "gen_ai.usage.output_tokens": 1,
                    "gen_ai.response.finish_reasons": ("stop",),
                    "gen_ai.input.messages": json.dumps(messages),
                    "gen_ai.output.messages": json.dumps(output),
                    "server.address": "api.example.com",
                    "server.port": 443,
                }
            )
        span_id = hex_span_id(otel_span.get_span_context().span_id)

    span = capture.named("chat gpt-x")
    root = capture.named("fulmen.rollout")
    assert span.span_id == span_id
    assert span.trace_id == root.trace_id
    assert span.meta.rollout_id == root.meta.rollout_id
    assert span.kind == "CLIENT"
    assert span.status.code == "OK"
    assert span.start_time_unix_nano <= span.end_time_unix_nano
    assert span.tool is None
    llm = span.llm
    assert llm is not None
    assert llm.operation_name == "chat"
    assert llm.provider_name == "openai"
    assert llm.request_model == "gpt-x"
    assert llm.response_model == "gpt-x-2025"
    assert llm.response_id == "resp-1"
    assert llm.temperature == 0.2
    assert llm.max_tokens == 32
    assert llm.input_tokens == 11
    assert llm.output_tokens == 1
    assert llm.finish_reasons == ["stop"]
    assert json.loads(llm.input_messages) == messages
    assert json.loads(llm.output_messages) == output
    assert not llm.streamed
    # gen_ai.* attributes live in `llm`; the rest stay attributes.
    assert span.attributes == Attributes(
        strings={"server.address": "api.example.com"}, ints={"server.port": 443}
    )


def test_legacy_gen_ai_system_names_the_provider(capture: Capture, tracer: Tracer) -> None:
    with fulmen.rollout(task_id="t"), tracer.start_as_current_span("chat m") as otel_span:
        otel_span.set_attributes({"gen_ai.operation.name": "chat", "gen_ai.system": "anthropic"})

    llm = capture.named("chat m").llm
    assert llm is not None
    assert llm.provider_name == "anthropic"
    assert llm.request_model == ""


def test_execute_tool_span_becomes_a_tool_call(capture: Capture, tracer: Tracer) -> None:
    with (
        fulmen.rollout(task_id="t"),
        tracer.start_as_current_span("execute_tool calculator") as otel_span,
    ):
        otel_span.set_attributes(
            {
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": "calculator",
                "gen_ai.tool.call.id": "call_0",
                "gen_ai.tool.call.arguments": '{"expression": "2 + 2"}',
                "gen_ai.tool.call.result": "4",
            }
        )

    span = capture.named("execute_tool calculator")
    assert span.llm is None
    assert span.tool is not None
    assert span.tool.name == "calculator"
    assert span.tool.call_id == "call_0"
    assert span.tool.type == "function"
    assert json.loads(span.tool.arguments) == {"expression": "2 + 2"}
    assert span.tool.result == "4"
    assert span.attributes == Attributes()


def test_other_spans_keep_typed_attributes(capture: Capture, tracer: Tracer) -> None:
    with fulmen.rollout(task_id="t"), tracer.start_as_current_span("plan") as otel_span:
        otel_span.set_attributes(
            {
                "step.name": "plan",
                "step.index": 3,
                "step.score": 0.75,
                "step.final": False,
                "step.tags": ("a", "b"),
                "step.sizes": [1, 2],
                "gen_ai.agent.name": "planner",
            }
        )

    span = capture.named("plan")
    assert span.llm is None
    assert span.tool is None
    assert span.kind == "INTERNAL"
    assert span.attributes == Attributes(
        strings={"step.name": "plan", "step.tags": '["a", "b"]', "step.sizes": "[1, 2]"},
        ints={"step.index": 3},
        doubles={"step.score": 0.75},
        bools={"step.final": False},
    )


def test_parent_ids_are_preserved(capture: Capture, tracer: Tracer) -> None:
    with fulmen.rollout(task_id="t"), tracer.start_as_current_span("agent") as agent:
        with tracer.start_as_current_span("chat m") as chat:
            chat.set_attribute("gen_ai.operation.name", "chat")
        with tracer.start_as_current_span("execute_tool f") as tool:
            tool.set_attribute("gen_ai.operation.name", "execute_tool")

    agent_id = hex_span_id(agent.get_span_context().span_id)
    assert capture.named("agent").span_id == agent_id
    assert capture.named("chat m").parent_span_id == agent_id
    assert capture.named("chat m").span_id == hex_span_id(chat.get_span_context().span_id)
    assert capture.named("execute_tool f").parent_span_id == agent_id
    assert capture.named("execute_tool f").span_id == hex_span_id(tool.get_span_context().span_id)
    trace_ids = {span.trace_id for span in capture.spans()}
    assert len(trace_ids) == 1  # every span lands in the rollout's trace


def test_otel_root_span_nests_under_the_rollout(capture: Capture, tracer: Tracer) -> None:
    with fulmen.rollout(task_id="t"), tracer.start_as_current_span("agent"):
        pass

    assert capture.named("agent").parent_span_id == capture.named("fulmen.rollout").span_id


def test_error_status_is_mapped(capture: Capture, tracer: Tracer) -> None:
    with fulmen.rollout(task_id="t"):
        with tracer.start_as_current_span("described") as otel_span:
            otel_span.set_status(Status(StatusCode.ERROR, "quota exceeded"))
        with tracer.start_as_current_span("bare") as otel_span:
            otel_span.set_status(Status(StatusCode.ERROR))
        with (
            pytest.raises(ValueError, match="bad input"),
            tracer.start_as_current_span("raising"),
        ):
            raise ValueError("bad input")

    assert capture.named("described").status.code == "ERROR"
    assert capture.named("described").status.message == "quota exceeded"
    assert capture.named("bare").status.code == "ERROR"
    assert capture.named("bare").status.message == "error"
    assert capture.named("raising").status.code == "ERROR"
    assert "bad input" in capture.named("raising").status.message


def test_spans_outside_a_rollout_are_ignored(capture: Capture, tracer: Tracer) -> None:
    with tracer.start_as_current_span("before"):
        pass
    with fulmen.rollout(task_id="t"), tracer.start_as_current_span("inside"):
        pass
    with tracer.start_as_current_span("after") as otel_span:
        otel_span.set_attribute("gen_ai.operation.name", "chat")

    assert sorted(span.name for span in capture.spans()) == ["fulmen.rollout", "inside"]


def test_span_started_in_a_rollout_is_kept_when_it_ends_after(
    capture: Capture, tracer: Tracer
) -> None:
    with fulmen.rollout(task_id="t"):
        late = tracer.start_span("late")
    late.end()

    assert capture.named("late").trace_id == capture.named("fulmen.rollout").trace_id


def test_split_attributes() -> None:
    assert split_attributes({"b": True, "i": 1, "f": 1.5, "s": "x", "l": ("y", 2)}) == Attributes(
        strings={"s": "x", "l": '["y", 2]'}, ints={"i": 1}, doubles={"f": 1.5}, bools={"b": True}
    )
