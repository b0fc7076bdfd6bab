"""Auto-capture of the real `openai` client against an OpenAI-compatible (vLLM-like) server:
sync and async, streaming or not, tool calls, errors; the agent's results are untouched."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionChunk

import fulmen
from fulmen.producers import FulmenSettings, InProcessBus
from fulmen.producers._openai import uninstrument_openai
from fulmen.schemas import SingleObjectCodec, Span
from tests.support.openai_server import (
    ANSWER_TOKENS,
    TOOL_ARGUMENT_TOKENS,
    TOOL_CALL_ID,
    TOOL_NAME,
    OpenAIServer,
    logprob_of,
    prompt_token_ids,
    token_id,
)

MODEL = "test-model"
MESSAGES = [
    {"role": "system", "content": "You add."},
    {"role": "user", "content": "What is 2 + 2?"},
]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": TOOL_NAME,
            "description": "Evaluates an arithmetic expression.",
            "parameters": {
                "type": "object",
                "properties": {"expression": {"type": "string"}},
                "required": ["expression"],
            },
        },
    }
]
ANSWER = "".join(ANSWER_TOKENS)
TOOL_ARGUMENTS = "".join(TOOL_ARGUMENT_TOKENS)


class Capture:
    """Fulmen configured on an in-process bus; reads back the spans it emitted."""

    def __init__(self, bus: InProcessBus) -> None:
        self.bus = bus
        self.codec = SingleObjectCodec()

    def spans(self) -> list[Span]:
        assert fulmen.get_producer().flush(5)
        messages = self.bus.read("fulmen.spans", 0, max_messages=10_000, timeout_s=0)
        spans = [self.codec.decode(m.value, topic="fulmen.spans") for m in messages]
        assert all(isinstance(span, Span) for span in spans)
        return [span for span in spans if isinstance(span, Span)]

    def llm_spans(self) -> list[Span]:
        return [span for span in self.spans() if span.llm is not None]

    def root_span(self) -> Span:
        (root,) = [span for span in self.spans() if span.name == "fulmen.rollout"]
        return root


Configure = Callable[..., Capture]


@pytest.fixture
def configure_fulmen(tmp_path: Path) -> Iterator[Configure]:
    """`configure_fulmen(request_token_ids=...)`: a fresh producer on its own bus and spill dir."""

    def configure(*, request_token_ids: bool = True) -> Capture:
        bus = InProcessBus()
        settings = FulmenSettings(
            producer={"spill_dir": tmp_path / "spill", "request_token_ids": request_token_ids}
        )
        fulmen.configure(settings, bus=bus)
        return Capture(bus)

    yield configure
    fulmen.shutdown()
    uninstrument_openai()


@pytest.fixture
def capture(configure_fulmen: Configure) -> Capture:
    return configure_fulmen(request_token_ids=True)


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer() as running:
        yield running


@pytest.fixture
def client(server: OpenAIServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0) as sync_client:
        yield sync_client


@pytest.fixture
async def async_client(server: OpenAIServer) -> Any:
    async with openai.AsyncOpenAI(
        base_url=server.base_url, api_key="x", max_retries=0
    ) as async_client:
        yield async_client


def chunk_dicts(chunks: list[ChatCompletionChunk]) -> list[dict[str, Any]]:
    return [chunk.to_dict() for chunk in chunks]


def assert_answer_span(span: Span, root: Span, *, streamed: bool) -> None:
    """The span of one captured call answered with `ANSWER`, token ids and logprobs included."""
    llm = span.llm
    assert llm is not None
    assert span.name == f"chat {MODEL}"
    assert span.kind == "CLIENT"
    assert span.status.code == "OK"
    assert span.trace_id == root.trace_id
    assert span.parent_span_id == root.span_id
    assert span.meta.rollout_id == root.meta.rollout_id
    assert root.start_time_unix_nano <= span.start_time_unix_nano <= span.end_time_unix_nano
    assert llm.request_model == MODEL
    assert llm.response_model == MODEL
    assert llm.response_id == "chatcmpl-test"
    assert llm.streamed is streamed
    assert json.loads(llm.input_messages) == MESSAGES
    (message,) = json.loads(llm.output_messages)
    assert message["role"] == "assistant"
    assert message["content"] == ANSWER
    assert llm.finish_reasons == ["stop"]
    prompt_ids = prompt_token_ids({"messages": MESSAGES})
    assert llm.input_tokens == len(prompt_ids)
    assert llm.output_tokens == len(ANSWER_TOKENS)
    assert llm.prompt_token_ids == prompt_ids
    assert llm.response_token_ids == [token_id(t) for t in ANSWER_TOKENS]
    assert llm.response_logprobs == [logprob_of(i) for i in range(len(ANSWER_TOKENS))]
    assert len(llm.response_token_ids) == len(llm.response_logprobs) == llm.output_tokens


def assert_token_params_injected(request: dict[str, Any]) -> None:
    assert request["logprobs"] is True
    assert request["return_token_ids"] is True


# -- sync ----------------------------------------------------------------------------------


def test_sync_completion_is_captured(
    capture: Capture, server: OpenAIServer, client: openai.OpenAI
) -> None:
    with fulmen.rollout(task_id="t"):
        response = client.chat.completions.create(model=MODEL, messages=MESSAGES)

    assert response.choices[0].message.content == ANSWER
    assert response.to_dict() == server.responses[-1]
    assert_token_params_injected(server.requests[-1])
    (span,) = capture.llm_spans()
    assert_answer_span(span, capture.root_span(), streamed=False)


def test_sync_stream_is_captured_and_passed_through(
    capture: Capture, server: OpenAIServer, client: openai.OpenAI
) -> None:
    with fulmen.rollout(task_id="t"):
        stream = client.chat.completions.create(
            model=MODEL, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        chunks = list(stream)

    assert chunk_dicts(chunks) == server.responses[-1]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == ANSWER
    assert_token_params_injected(server.requests[-1])
    (span,) = capture.llm_spans()
    assert_answer_span(span, capture.root_span(), streamed=True)


def test_sync_stream_as_context_manager(
    capture: Capture, server: OpenAIServer, client: openai.OpenAI
) -> None:
    with (
        fulmen.rollout(task_id="t"),
        client.chat.completions.create(
            model=MODEL, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        ) as stream,
    ):
        assert stream.response.status_code == 200  # the wrapper passes attributes through
        chunks = [chunk for chunk in stream]

    assert chunk_dicts(chunks) == server.responses[-1]
    (span,) = capture.llm_spans()
    assert_answer_span(span, capture.root_span(), streamed=True)


def test_sync_stream_read_with_next(
    capture: Capture, server: OpenAIServer, client: openai.OpenAI
) -> None:
    with fulmen.rollout(task_id="t"):
        stream = client.chat.completions.create(
            model=MODEL, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        chunks = [next(stream) for _ in server.responses[-1]]  # as many as the server sent
        with pytest.raises(StopIteration):
            next(stream)

    assert chunk_dicts(chunks) == server.responses[-1]
    (span,) = capture.llm_spans()
    assert_answer_span(span, capture.root_span(), streamed=True)


def test_stream_without_usage_has_no_token_counts(
    capture: Capture, server: OpenAIServer, client: openai.OpenAI
) -> None:
    with fulmen.rollout(task_id="t"):
        chunks = list(client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True))

    assert chunk_dicts(chunks) == server.responses[-1]
    (span,) = capture.llm_spans()
    assert span.llm is not None
    assert span.llm.input_tokens is None
    assert span.llm.output_tokens is None
    assert len(span.llm.response_token_ids) == len(span.llm.response_logprobs) == 5


# -- async ---------------------------------------------------------------------------------


async def test_async_completion_is_captured(
    capture: Capture, server: OpenAIServer, async_client: openai.AsyncOpenAI
) -> None:
    async with fulmen.rollout(task_id="t"):
        response = await async_client.chat.completions.create(model=MODEL, messages=MESSAGES)

    assert response.to_dict() == server.responses[-1]
    assert_token_params_injected(server.requests[-1])
    (span,) = capture.llm_spans()
    assert_answer_span(span, capture.root_span(), streamed=False)


async def test_async_stream_is_captured_and_passed_through(
    capture: Capture, server: OpenAIServer, async_client: openai.AsyncOpenAI
) -> None:
    async with fulmen.rollout(task_id="t"):
        stream = await async_client.chat.completions.create(
            model=MODEL, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        chunks = [chunk async for chunk in stream]

    assert chunk_dicts(chunks) == server.responses[-1]
    assert_token_params_injected(server.requests[-1])
    (span,) = capture.llm_spans()
    assert_answer_span(span, capture.root_span(), streamed=True)


async def test_async_stream_as_context_manager(
    capture: Capture, server: OpenAIServer, async_client: openai.AsyncOpenAI
) -> None:
    async with (
        fulmen.rollout(task_id="t"),
        await async_client.chat.completions.create(
            model=MODEL, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        ) as stream,
    ):
        chunks = [chunk async for chunk in stream]

    assert chunk_dicts(chunks) == server.responses[-1]
    (span,) = capture.llm_spans()
    assert_answer_span(span, capture.root_span(), streamed=True)


# -- tool calls ----------------------------------------------------------------------------


def assert_tool_call_span(span: Span, *, streamed: bool) -> None:
    llm = span.llm
    assert llm is not None
    assert llm.streamed is streamed
    assert llm.finish_reasons == ["tool_calls"]
    assert json.loads(llm.tool_definitions) == TOOLS
    (message,) = json.loads(llm.output_messages)
    assert message["role"] == "assistant"
    assert message.get("content") in (None, "")
    assert message["tool_calls"] == [
        {
            "id": TOOL_CALL_ID,
            "type": "function",
            "function": {"name": TOOL_NAME, "arguments": TOOL_ARGUMENTS},
        }
    ]
    assert llm.response_token_ids == [token_id(t) for t in TOOL_ARGUMENT_TOKENS]
    assert len(llm.response_logprobs) == len(TOOL_ARGUMENT_TOKENS)


def test_tool_call_response(capture: Capture, server: OpenAIServer, client: openai.OpenAI) -> None:
    with fulmen.rollout(task_id="t"):
        response = client.chat.completions.create(model=MODEL, messages=MESSAGES, tools=TOOLS)

    assert response.to_dict() == server.responses[-1]
    (call,) = response.choices[0].message.tool_calls or []
    assert call.type == "function"
    assert call.function.arguments == TOOL_ARGUMENTS
    (span,) = capture.llm_spans()
    assert_tool_call_span(span, streamed=False)


def test_streamed_tool_call_deltas_are_reassembled(
    capture: Capture, server: OpenAIServer, client: openai.OpenAI
) -> None:
    with fulmen.rollout(task_id="t"):
        chunks = list(
            client.chat.completions.create(model=MODEL, messages=MESSAGES, tools=TOOLS, stream=True)
        )

    assert chunk_dicts(chunks) == server.responses[-1]
    (span,) = capture.llm_spans()
    assert_tool_call_span(span, streamed=True)


async def test_async_streamed_tool_call(
    capture: Capture, server: OpenAIServer, async_client: openai.AsyncOpenAI
) -> None:
    async with fulmen.rollout(task_id="t"):
        stream = await async_client.chat.completions.create(
            model=MODEL, messages=MESSAGES, tools=TOOLS, stream=True
        )
        chunks = [chunk async for chunk in stream]

    assert chunk_dicts(chunks) == server.responses[-1]
    (span,) = capture.llm_spans()
    assert_tool_call_span(span, streamed=True)


def test_call_inside_a_tool_nests_under_the_tool_span(
    capture: Capture, client: openai.OpenAI
) -> None:
    @fulmen.tool
    def ask(question: str) -> str | None:
        response = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": question}]
        )
        return response.choices[0].message.content

    with fulmen.rollout(task_id="t"):
        assert ask("What is 2 + 2?") == ANSWER

    spans = capture.spans()
    (tool_span,) = [span for span in spans if span.tool is not None]
    (llm_span,) = [span for span in spans if span.llm is not None]
    assert tool_span.name == "execute_tool ask"
    assert tool_span.parent_span_id == capture.root_span().span_id
    assert llm_span.parent_span_id == tool_span.span_id


# -- outside a rollout, errors, settings ---------------------------------------------------


def test_call_outside_a_rollout_emits_nothing(
    capture: Capture, server: OpenAIServer, client: openai.OpenAI
) -> None:
    response = client.chat.completions.create(model=MODEL, messages=MESSAGES)
    chunks = list(client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True))

    assert response.choices[0].message.content == ANSWER
    assert chunk_dicts(chunks) == server.responses[-1]
    assert capture.spans() == []
    for request in server.requests:  # nothing injected either
        assert "logprobs" not in request
        assert "return_token_ids" not in request


def test_server_error_reaches_the_caller_and_is_recorded(
    capture: Capture, server: OpenAIServer, client: openai.OpenAI
) -> None:
    server.fail_status = 500
    with fulmen.rollout(task_id="t"), pytest.raises(openai.InternalServerError) as raised:
        client.chat.completions.create(model=MODEL, messages=MESSAGES)

    assert raised.value.status_code == 500
    assert raised.value.body == {"message": "boom", "type": "server_error", "code": None}
    (span,) = capture.llm_spans()
    assert span.status.code == "ERROR"
    assert span.status.message.startswith("InternalServerError: ")
    assert span.parent_span_id == capture.root_span().span_id
    assert span.llm is not None
    assert span.llm.request_model == MODEL
    assert json.loads(span.llm.input_messages) == MESSAGES
    assert span.llm.output_messages == "[]"


async def test_async_server_error_reaches_the_caller_and_is_recorded(
    capture: Capture, server: OpenAIServer, async_client: openai.AsyncOpenAI
) -> None:
    server.fail_status = 500
    with pytest.raises(openai.InternalServerError):
        async with fulmen.rollout(task_id="t"):
            await async_client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)

    (span,) = capture.llm_spans()
    assert span.status.code == "ERROR"
    assert span.status.message.startswith("InternalServerError: ")


def test_token_ids_are_not_requested_unless_configured(
    configure_fulmen: Configure, server: OpenAIServer, client: openai.OpenAI
) -> None:
    capture = configure_fulmen(request_token_ids=False)
    with fulmen.rollout(task_id="t"):
        client.chat.completions.create(model=MODEL, messages=MESSAGES)
        list(client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True))

    for request in server.requests:
        assert "logprobs" not in request
        assert "return_token_ids" not in request
    spans = capture.llm_spans()
    assert [span.llm.streamed for span in spans if span.llm] == [False, True]
    for span in spans:
        assert span.llm is not None
        assert (json.loads(span.llm.output_messages)[0]["content"]) == ANSWER
        assert span.llm.prompt_token_ids == []
        assert span.llm.response_token_ids == []
        assert span.llm.response_logprobs == []


def test_caller_params_are_kept_and_sent(
    capture: Capture, server: OpenAIServer, client: openai.OpenAI
) -> None:
    with fulmen.rollout(task_id="t"):
        client.chat.completions.create(
            model=MODEL,
            messages=MESSAGES,
            temperature=0.5,
            max_tokens=64,
            extra_body={"top_k": 5},
        )

    request = server.requests[-1]
    assert request["temperature"] == 0.5
    assert request["max_tokens"] == 64
    assert request["top_k"] == 5
    assert_token_params_injected(request)
    (span,) = capture.llm_spans()
    assert span.llm is not None
    assert span.llm.temperature == 0.5
    assert span.llm.max_tokens == 64


# -- raw responses and abandoned streams ------------------------------------------------


def test_raw_response_call_is_captured(capture: Capture, client: openai.OpenAI) -> None:
    with fulmen.rollout(task_id="t"):
        raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=MESSAGES)
        assert raw.parse().choices[0].message.content == ANSWER

    (span,) = capture.llm_spans()
    assert_answer_span(span, capture.root_span(), streamed=False)


def test_stream_abandoned_early_is_not_an_error(capture: Capture, client: openai.OpenAI) -> None:
    with fulmen.rollout(task_id="t"):
        stream = iter(client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True))
        next(stream)
        stream.close()  # what garbage collection does to an abandoned `for` loop's iterator

    (span,) = capture.llm_spans()
    assert span.status.code == "OK"
    assert span.llm is not None
    assert span.llm.streamed
