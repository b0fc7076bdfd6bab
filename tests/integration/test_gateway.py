"""The gateway over real HTTP, in front of the policy server on a tiny model, recording into
the session's Kafka broker: the plain `openai` client (sync, async, streaming) and raw HTTP
get what the policy server answers directly, byte for byte but for the ids and timestamps
it generates; the events on the broker carry token ids and logprobs, streamed calls too.

Greedy sampling (temperature 0) makes the direct and the gateway's answers the same tokens.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import torch

from fulmen.kafka import KafkaSettings, create_topics
from fulmen.kafka._consumer import EventConsumer
from fulmen.models import tiny_model_dir
from fulmen.producers import FulmenSettings, publish_version, version_meta
from fulmen.producers.gateway import (
    Gateway,
    GatewaySettings,
    gateway_in_thread,
    open_gateway,
    rollout_trace,
)
from fulmen.schemas import Event, Reward, RolloutEvent, Span, VersionEvent
from fulmen.serving import PolicyServer, serve_in_thread
from tests.support.openai_server import TOOL_ARGUMENT_TOKENS, TOOL_NAME, OpenAIServer

pytestmark = pytest.mark.integration

MODEL = "tiny"
MESSAGES: list[Any] = [{"role": "user", "content": "What is 3+4?"}]
REQUEST: dict[str, Any] = {"model": MODEL, "messages": MESSAGES, "max_tokens": 8, "temperature": 0}
TEXT_REQUEST: dict[str, Any] = {
    "model": MODEL,
    "prompt": "3+4=",
    "max_tokens": 8,
    "temperature": 0,
}
GENERATED = re.compile(rb'("id": ?"(chat)?cmpl-[0-9a-f]+"|"created": ?\d+)')


# -- the stack -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Upstream:
    url: str  # http://127.0.0.1:<port>/v1
    server: PolicyServer
    models: Path


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # 2 shared cores: tiny matmuls only contend
    root = tmp_path_factory.mktemp("gateway-models")
    base = tiny_model_dir(root / MODEL, seed=0)
    server = PolicyServer(base, name=MODEL, precision="float32", model_roots=[root])
    try:
        with serve_in_thread(server) as url:
            yield Upstream(url, server, root)
    finally:
        torch.set_num_threads(threads)


class Collector:
    """Reads every event of a topic prefix from the broker on a thread, for tests to wait on."""

    def __init__(self, bootstrap: str, prefix: str) -> None:
        topics = FulmenSettings(topics={"prefix": prefix}).topics
        names = [topics.for_event(kind) for kind in ("span", "reward", "rollout")]
        self._consumer = EventConsumer(
            KafkaSettings(bootstrap_servers=bootstrap), names, group_id=uuid.uuid4().hex
        )
        self._events: list[Event] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            batch = self._consumer.poll(max_messages=1000, timeout_s=0.2)
            with self._lock:
                self._events.extend(c.event for c in batch if not isinstance(c.event, Exception))
        self._consumer.close()

    def of(self, rollout_id: str, count: int, timeout_s: float = 30) -> list[Event]:
        """The events of `rollout_id`, once there are `count` of them, in sequence order."""
        deadline = time.monotonic() + timeout_s
        while True:
            with self._lock:
                found = [e for e in self._events if e.meta.rollout_id == rollout_id]
            if len(found) >= count or time.monotonic() > deadline:
                assert len(found) == count, f"{rollout_id}: {len(found)} events, not {count}"
                return sorted(found, key=lambda e: e.meta.sequence)
            time.sleep(0.05)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)


def new_prefix(bootstrap: str) -> str:
    prefix = f"gw{uuid.uuid4().hex[:8]}."
    topics = FulmenSettings(topics={"prefix": prefix}).topics
    create_topics(KafkaSettings(bootstrap_servers=bootstrap), topics.event_topics())
    return prefix


def fulmen_settings(
    bootstrap: str, prefix: str, spill: Path, agent: str = "calc"
) -> FulmenSettings:
    return FulmenSettings(
        transport="kafka",
        kafka={"bootstrap_servers": bootstrap},
        topics={"prefix": prefix},
        producer={
            "agent_name": agent,
            "linger_ms": 5,
            "model_version": "base",
            "spill_dir": spill,
            "follow_startup_timeout_s": 15,
        },
    )


@dataclass(frozen=True)
class Running:
    url: str  # http://127.0.0.1:<port>
    gateway: Gateway
    events: Collector

    def rollout_url(self, rollout_id: str, attempt: int = 1) -> str:
        return f"{self.url}/rollouts/{rollout_id}/attempts/{attempt}/v1"

    def stats(self) -> dict[str, Any]:
        response = httpx.get(f"{self.url}/fulmen/stats")
        stats: dict[str, Any] = response.json()
        return stats


Start = Callable[..., Running]


@pytest.fixture(scope="module")
def prefix(bootstrap_servers: str) -> str:
    return new_prefix(bootstrap_servers)


@pytest.fixture(scope="module")
def events(bootstrap_servers: str, prefix: str) -> Iterator[Collector]:
    collector = Collector(bootstrap_servers, prefix)
    yield collector
    collector.close()


@pytest.fixture(scope="module")
def start_gateway(
    upstream: Upstream,
    bootstrap_servers: str,
    prefix: str,
    events: Collector,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Start]:
    """`start_gateway(**gateway_settings)`: a gateway on the module's topics, until the end."""
    stack = contextlib.ExitStack()

    def start(*, prefix_: str = prefix, collector: Collector = events, **options: Any) -> Running:
        settings = GatewaySettings(**({"upstream_url": upstream.url} | options))
        spill = tmp_path_factory.mktemp("spill")
        gateway = open_gateway(settings, fulmen_settings(bootstrap_servers, prefix_, spill))
        stack.callback(gateway.close, 30)
        url = stack.enter_context(gateway_in_thread(gateway))
        return Running(url, gateway, collector)

    with stack:
        yield start


@pytest.fixture(scope="module")
def gateway(start_gateway: Start) -> Running:
    return start_gateway()


def rollout_id() -> str:
    return f"r-{uuid.uuid4().hex[:12]}"


def client(base_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0)


def without_generated(value: Any) -> Any:
    """A response (or chunk) without the id and timestamp the server makes up per call."""
    if isinstance(value, list):
        return [without_generated(item) for item in value]
    return {k: v for k, v in value.items() if k not in ("id", "created")}


def reference(upstream: Upstream, **overrides: Any) -> openai.types.chat.ChatCompletion:
    """The direct answer with token ids and logprobs: what the recorded span must say."""
    request = REQUEST | {"logprobs": True, "extra_body": {"return_token_ids": True}} | overrides
    return client(upstream.url).chat.completions.create(**request)


def llm_spans(events: list[Event]) -> list[Span]:
    return [e for e in events if isinstance(e, Span) and e.llm is not None]


def assert_recorded(span: Span, expected: Any, rollout: str, *, streamed: bool) -> None:
    """`span` records the call answered `expected` (a direct ChatCompletion with ids)."""
    llm = span.llm
    assert llm is not None
    choice = expected.choices[0]
    assert span.name == f"chat {MODEL}"
    assert span.kind == "CLIENT"
    assert span.status.code == "OK"
    assert span.meta.rollout_id == rollout
    assert span.meta.agent_name == "calc"
    assert span.meta.model_version == "base"
    assert (span.trace_id, span.parent_span_id) == rollout_trace(rollout, span.meta.attempt)
    assert span.start_time_unix_nano < span.end_time_unix_nano
    assert llm.streamed is streamed
    assert llm.request_model == MODEL
    assert llm.response_model == MODEL
    assert json.loads(llm.input_messages) == MESSAGES
    (message,) = json.loads(llm.output_messages)
    assert message["content"] == choice.message.content
    assert llm.finish_reasons == [choice.finish_reason]
    assert llm.prompt_token_ids == expected.prompt_token_ids
    assert llm.response_token_ids == choice.token_ids
    assert llm.response_logprobs == pytest.approx([t.logprob for t in choice.logprobs.content])
    assert llm.input_tokens == expected.usage.prompt_tokens
    assert llm.output_tokens == expected.usage.completion_tokens == len(llm.response_token_ids)
    assert span.attributes.ints["http.response.status_code"] == 200


# -- the plain openai client ------------------------------------------------------------------


def test_sync_call_is_answered_as_directly_and_recorded_with_token_ids(
    upstream: Upstream, gateway: Running
) -> None:
    rollout = rollout_id()
    direct = client(upstream.url).chat.completions.create(**REQUEST)
    via = client(gateway.rollout_url(rollout)).chat.completions.create(**REQUEST)

    assert without_generated(via.to_dict()) == without_generated(direct.to_dict())
    assert via.choices[0].logprobs is None  # asked for by the gateway, not given to the agent
    assert "token_ids" not in via.choices[0].to_dict()
    (span,) = llm_spans(gateway.events.of(rollout, 1))
    assert_recorded(span, reference(upstream), rollout, streamed=False)


def test_sync_stream_is_relayed_as_directly_and_recorded_with_token_ids(
    upstream: Upstream, gateway: Running
) -> None:
    rollout = rollout_id()
    direct = list(client(upstream.url).chat.completions.create(**REQUEST, stream=True))
    via = list(client(gateway.rollout_url(rollout)).chat.completions.create(**REQUEST, stream=True))

    assert without_generated([c.to_dict() for c in via]) == without_generated(
        [c.to_dict() for c in direct]
    )
    assert all(c.usage is None for c in via)  # include_usage was the gateway's, not the agent's
    (span,) = llm_spans(gateway.events.of(rollout, 1))
    assert_recorded(span, reference(upstream), rollout, streamed=True)
    assert span.attributes.doubles["gen_ai.server.time_to_first_token"] > 0


async def test_async_calls_and_streams(upstream: Upstream, gateway: Running) -> None:
    rollout = rollout_id()
    direct = openai.AsyncOpenAI(base_url=upstream.url, api_key="unused", max_retries=0)
    via = openai.AsyncOpenAI(base_url=gateway.rollout_url(rollout), api_key="u", max_retries=0)
    async with direct, via:
        plain = [await c.chat.completions.create(**REQUEST) for c in (direct, via)]
        streams = []
        for c in (direct, via):
            stream = await c.chat.completions.create(
                **REQUEST, stream=True, stream_options={"include_usage": True}
            )
            streams.append([chunk.to_dict() async for chunk in stream])

    assert without_generated(plain[1].to_dict()) == without_generated(plain[0].to_dict())
    assert without_generated(streams[1]) == without_generated(streams[0])
    assert streams[1][-1]["usage"]["completion_tokens"] > 0  # the agent's own include_usage
    spans = llm_spans(gateway.events.of(rollout, 2))
    expected = reference(upstream)
    assert_recorded(spans[0], expected, rollout, streamed=False)
    assert_recorded(spans[1], expected, rollout, streamed=True)


# -- raw HTTP, as curl sends it ---------------------------------------------------------------


def raw_post(
    url: str, body: dict[str, Any], headers: dict[str, str] | None = None
) -> httpx.Response:
    return httpx.post(url, content=json.dumps(body), headers=headers or {}, timeout=60)


def comparable(response: httpx.Response) -> tuple[int, dict[str, str], bytes]:
    headers = {k: v for k, v in response.headers.items() if k not in ("date", "content-length")}
    return response.status_code, headers, GENERATED.sub(b"<generated>", response.content)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize("agent_asks_for_ids", [False, True], ids=["gateway-asks", "agent-asks"])
def test_raw_http_bytes_are_the_upstreams(
    upstream: Upstream, gateway: Running, stream: bool, agent_asks_for_ids: bool
) -> None:
    rollout = rollout_id()
    body = REQUEST | {"stream": stream}
    if agent_asks_for_ids:
        body |= {"logprobs": True, "return_token_ids": True}
    direct = raw_post(f"{upstream.url}/chat/completions", body)
    headers = {"X-Fulmen-Rollout-Id": rollout, "X-Fulmen-Attempt": "2"}
    via = raw_post(f"{gateway.url}/v1/chat/completions", body, headers)

    assert comparable(via) == comparable(direct)
    (span,) = llm_spans(gateway.events.of(rollout, 1))
    assert span.meta.attempt == 2
    assert_recorded(span, reference(upstream), rollout, streamed=stream)


# -- text completions (/v1/completions) ------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_text_completions_are_answered_as_directly_and_recorded_with_token_ids(
    upstream: Upstream, gateway: Running, stream: bool
) -> None:
    rollout = rollout_id()
    body = TEXT_REQUEST | {"stream": stream}
    direct = raw_post(f"{upstream.url}/completions", body)
    via = raw_post(f"{gateway.rollout_url(rollout)}/completions", body)
    assert comparable(via) == comparable(direct)
    if stream:
        streamed = list(client(gateway.rollout_url(rollout)).completions.create(**body))
        assert "".join(c.choices[0].text for c in streamed if c.choices) == json_text(direct)
    else:
        answer = client(gateway.rollout_url(rollout)).completions.create(**body)
        assert answer.choices[0].text == json_text(direct)
        assert answer.choices[0].logprobs is None

    expected = client(upstream.url).completions.create(
        **TEXT_REQUEST, logprobs=0, extra_body={"return_token_ids": True}
    )
    choice = expected.choices[0].to_dict()
    assert choice["prompt_token_ids"]
    assert choice["token_ids"]
    for span in llm_spans(gateway.events.of(rollout, 2)):
        llm = span.llm
        assert llm is not None
        assert span.name == f"text_completion {MODEL}"
        assert span.status.code == "OK"
        assert llm.streamed is stream
        assert json.loads(llm.output_messages)[0]["content"] == choice["text"]
        assert llm.prompt_token_ids == choice["prompt_token_ids"]
        assert llm.response_token_ids == choice["token_ids"]
        assert llm.response_logprobs == pytest.approx(choice["logprobs"]["token_logprobs"])
        assert llm.output_tokens == len(choice["token_ids"])


def json_text(response: httpx.Response) -> str:
    """The text of a text completion answered as JSON or as server-sent events."""
    if response.headers["content-type"].startswith("application/json"):
        text: str = response.json()["choices"][0]["text"]
        return text
    events = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
    return "".join(
        choice["text"] for e in events if e != "[DONE]" for choice in json.loads(e)["choices"]
    )


def test_tool_calls_are_relayed_and_recorded(gateway: Running, start_gateway: Start) -> None:
    """Tool-call deltas of a vLLM-shaped server (the policy server has no tool parser)."""
    tools = [{"type": "function", "function": {"name": TOOL_NAME, "parameters": {}}}]
    rollout = rollout_id()
    with OpenAIServer() as tool_server:
        running = start_gateway(upstream_url=tool_server.base_url)
        request = {"model": "m", "messages": MESSAGES, "tools": tools, "stream": True}
        direct = list(client(tool_server.base_url).chat.completions.create(**request))
        via = list(client(running.rollout_url(rollout)).chat.completions.create(**request))
        assert tool_server.requests[-1]["return_token_ids"] is True

    assert without_generated([c.to_dict() for c in via]) == without_generated(
        [c.to_dict() for c in direct]
    )
    (span,) = llm_spans(running.events.of(rollout, 1))
    assert span.llm is not None
    assert json.loads(span.llm.tool_definitions) == tools
    (message,) = json.loads(span.llm.output_messages)
    (call,) = message["tool_calls"]
    assert call["function"] == {"name": TOOL_NAME, "arguments": "".join(TOOL_ARGUMENT_TOKENS)}
    assert span.llm.response_token_ids  # recorded from the stream's chunks


# -- rollouts, rewards, identity --------------------------------------------------------------


def test_rollout_lifecycle_and_rewards_over_http(upstream: Upstream, gateway: Running) -> None:
    started = httpx.post(f"{gateway.url}/rollouts", json={"task_id": "3+4", "input": {"q": 1}})
    assert started.status_code == 201
    rollout = started.json()["rollout_id"]
    base_url = started.json()["base_url"]
    assert base_url == gateway.rollout_url(rollout)
    completion = client(base_url).chat.completions.create(**REQUEST)
    assert completion.choices[0].message.content is not None
    prefix = f"{gateway.url}/rollouts/{rollout}"
    assert (
        httpx.post(f"{prefix}/rewards", json={"value": 0.5, "source": "judge"}).status_code == 200
    )
    assert (
        httpx.post(f"{prefix}/finish", json={"status": "failed", "error": "x"}).status_code == 200
    )
    bad = httpx.post(f"{prefix}/rewards", json={"value": "high"})
    assert bad.status_code == 400

    started_event, call, reward, root, finished = gateway.events.of(rollout, 5)
    trace_id, root_span_id = rollout_trace(rollout, 1)
    assert isinstance(started_event, RolloutEvent)
    assert started_event.phase == "started"
    assert (started_event.task_id, started_event.input) == ("3+4", '{"q": 1}')
    assert isinstance(call, Span)
    assert (call.trace_id, call.parent_span_id) == (trace_id, root_span_id)
    assert isinstance(reward, Reward)
    assert (reward.value, reward.source) == (0.5, "judge")
    assert isinstance(root, Span)
    assert (root.name, root.span_id, root.parent_span_id) == ("fulmen.rollout", root_span_id, None)
    assert root.status.code == "ERROR"
    assert root.start_time_unix_nano < call.start_time_unix_nano
    assert isinstance(finished, RolloutEvent)
    assert (finished.phase, finished.status, finished.error) == ("finished", "failed", "x")
    assert {e.meta.agent_name for e in (started_event, call, reward, root, finished)} == {"calc"}


def test_agent_name_from_the_path(gateway: Running) -> None:
    rollout = rollout_id()
    url = f"{gateway.url}/agents/writer/rollouts/{rollout}/v1"
    client(url).chat.completions.create(**REQUEST)
    (span,) = llm_spans(gateway.events.of(rollout, 1))
    assert span.meta.agent_name == "writer"


def test_calls_without_a_rollout_pass_through_and_are_counted(
    upstream: Upstream, gateway: Running
) -> None:
    before = gateway.stats()["gateway"]
    direct = client(upstream.url).chat.completions.create(**REQUEST)
    via = client(f"{gateway.url}/v1").chat.completions.create(**REQUEST)
    models = client(f"{gateway.url}/v1").models.list()

    assert without_generated(via.to_dict()) == without_generated(direct.to_dict())
    assert [m.id for m in models] == [MODEL]
    after = gateway.stats()["gateway"]
    assert after["unattributed"] == before["unattributed"] + 1
    assert after["calls"] == before["calls"] + 1
    assert after["recorded"] == before["recorded"]


# -- failures and overload ----------------------------------------------------------------------


def test_upstream_errors_pass_through_unchanged_and_are_recorded(
    upstream: Upstream, gateway: Running
) -> None:
    rollout = rollout_id()
    body = REQUEST | {"model": "no-such-model"}
    direct = raw_post(f"{upstream.url}/chat/completions", body)
    via = raw_post(f"{gateway.rollout_url(rollout)}/chat/completions", body)
    with pytest.raises(openai.BadRequestError):
        client(gateway.rollout_url(rollout)).chat.completions.create(**(REQUEST | {"n": 2}))

    assert direct.status_code == 404
    assert comparable(via) == comparable(direct)
    missing, bad = llm_spans(gateway.events.of(rollout, 2))
    assert missing.status.code == bad.status.code == "ERROR"
    assert missing.status.message.startswith("upstream 404: The model `no-such-model`")
    assert bad.attributes.ints["http.response.status_code"] == 400


def test_unreachable_upstream_is_a_502_and_recorded(start_gateway: Start) -> None:
    with socket_without_server() as port:
        running = start_gateway(upstream_url=f"http://127.0.0.1:{port}/v1")
        rollout = rollout_id()
        response = raw_post(f"{running.rollout_url(rollout)}/chat/completions", REQUEST)
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "bad_gateway"
    (span,) = llm_spans(running.events.of(rollout, 1))
    assert span.status.code == "ERROR"
    assert span.status.message.startswith("upstream unreachable")
    assert running.stats()["gateway"]["upstream_errors"] == 1


def test_silent_upstream_is_a_504_and_recorded(start_gateway: Start) -> None:
    with socket_that_never_answers() as port:
        running = start_gateway(
            upstream_url=f"http://127.0.0.1:{port}/v1", upstream_read_timeout_s=0.5
        )
        rollout = rollout_id()
        response = raw_post(f"{running.rollout_url(rollout)}/chat/completions", REQUEST)
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "timeout"
    (span,) = llm_spans(running.events.of(rollout, 1))
    assert span.status.code == "ERROR"
    assert span.status.message.startswith("upstream unreachable")
    assert running.stats()["gateway"]["upstream_errors"] == 1


@contextlib.contextmanager
def socket_that_never_answers() -> Iterator[int]:
    """A port that accepts connections (the kernel's backlog) and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock.getsockname()[1]


@contextlib.contextmanager
def socket_without_server() -> Iterator[int]:
    """A port on which nothing listens (bound, not listening: connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def test_calls_beyond_the_in_flight_bound_get_503(start_gateway: Start) -> None:
    running = start_gateway(max_in_flight=1, retry_after_s=2)
    rollout = rollout_id()
    long_stream = client(running.rollout_url(rollout)).chat.completions.create(
        **(REQUEST | {"max_tokens": 200}), stream=True
    )
    next(iter(long_stream))  # the stream holds the only slot until it ends
    refused = raw_post(f"{running.rollout_url(rollout)}/chat/completions", REQUEST)
    long_stream.close()  # the agent leaves: the slot is released, the call recorded
    time.sleep(0.2)
    after = raw_post(f"{running.rollout_url(rollout)}/chat/completions", REQUEST)

    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "2"
    assert refused.json()["error"]["code"] == "overloaded"
    assert after.status_code == 200
    left, answered = llm_spans(running.events.of(rollout, 2))
    assert left.status.message == "the agent left before the end of the stream"
    assert left.llm is not None
    assert left.llm.response_token_ids
    assert answered.status.code == "OK"
    stats = running.stats()["gateway"]
    assert (stats["rejected"], stats["disconnects"], stats["in_flight"]) == (1, 1, 0)


# -- versions -------------------------------------------------------------------------------------


def test_versions_choose_the_model_and_prompt_and_stamp_the_events(
    upstream: Upstream, bootstrap_servers: str, start_gateway: Start
) -> None:
    prefix = new_prefix(bootstrap_servers)
    collector = Collector(bootstrap_servers, prefix)
    try:
        upstream.server.load_weights("calc-v2", tiny_model_dir(upstream.models / "v2", seed=1))
        trainer = fulmen_settings(bootstrap_servers, prefix, upstream.models / "spill")
        for event in (
            VersionEvent(
                meta=version_meta(), version_id="calc-v2", kind="model", model_name="calc-v2"
            ),
            VersionEvent(
                meta=version_meta(),
                version_id="calc-p3",
                kind="prompt",
                target_agent="calc",
                prompt_templates={"system": "Answer with a number."},
            ),
        ):
            publish_version(event, trainer)
        running = start_gateway(
            prefix_=prefix, collector=collector, system_prompt_template="system"
        )
        rollout = rollout_id()
        answer = client(running.rollout_url(rollout)).chat.completions.create(**REQUEST)
        other = rollout_id()
        url = f"{running.url}/agents/other/rollouts/{other}/v1"
        client(url).chat.completions.create(**REQUEST)

        (span,) = llm_spans(collector.of(rollout, 1))
        (other_span,) = llm_spans(collector.of(other, 1))
    finally:
        collector.close()
        upstream.server.unload("calc-v2")
    assert answer.model == "calc-v2"
    assert span.llm is not None
    assert span.llm.request_model == "calc-v2"
    assert (span.meta.model_version, span.meta.resources_version) == ("calc-v2", "calc-p3")
    assert json.loads(span.llm.input_messages) == [
        {"role": "system", "content": "Answer with a number."},
        *MESSAGES,
    ]
    # the prompt version targets `calc` only; the model version every agent
    assert (other_span.meta.model_version, other_span.meta.resources_version) == ("calc-v2", "")
    assert other_span.llm is not None
    assert json.loads(other_span.llm.input_messages) == MESSAGES
