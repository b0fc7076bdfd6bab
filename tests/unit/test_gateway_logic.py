"""The gateway's pure logic: identity from paths and headers, request rewriting and response
stripping, server-sent event splitting, versions per agent, text-completion records."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from openai.types import Completion
from starlette.testclient import TestClient

from fulmen.producers import (
    FulmenSettings,
    InProcessBus,
    InProcessTransport,
    Producer,
    Resources,
    VersionState,
)
from fulmen.producers._llm_calls import TextChunkAccumulator, from_text_completion
from fulmen.producers.gateway import (
    Added,
    BadIdentity,
    Gateway,
    GatewaySettings,
    Identity,
    SseDecoder,
    parse_path,
    rewrite,
    rollout_trace,
    strip,
    with_headers,
)
from fulmen.producers.gateway._rewrite import dumps_like
from fulmen.schemas import Reward, SingleObjectCodec, VersionEvent
from tests.support.events import meta

SETTINGS = GatewaySettings()
CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


# -- identity -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "identity", "rest"),
    [
        ("v1/chat/completions", Identity(), "v1/chat/completions"),
        ("rollouts/r1/v1/completions", Identity("r1"), "v1/completions"),
        ("rollouts/r1/attempts/3/v1/models", Identity("r1", 3), "v1/models"),
        ("agents/a/rollouts/r1/attempts/2/finish", Identity("r1", 2, "a"), "finish"),
        ("agents/a/v1/chat/completions", Identity(None, 1, "a"), "v1/chat/completions"),
        ("rollouts", Identity(), ""),
        ("rollouts/r1/rewards", Identity("r1"), "rewards"),
    ],
)
def test_paths_name_the_rollout(path: str, identity: Identity, rest: str) -> None:
    route = parse_path(path)
    assert (route.identity, route.rest) == (identity, rest)


@pytest.mark.parametrize("path", ["rollouts/r1/attempts/0/v1", "rollouts/r1/attempts/x/v1"])
def test_bad_attempts_are_refused(path: str) -> None:
    with pytest.raises(BadIdentity):
        parse_path(path)


def test_headers_fill_what_the_path_left_unsaid() -> None:
    headers = {"x-fulmen-rollout-id": "h", "x-fulmen-attempt": "2", "x-fulmen-agent": "b"}
    assert with_headers(Identity(), headers) == Identity("h", 2, "b")
    assert with_headers(Identity("p", 1, "a"), headers) == Identity("p", 1, "a")


def test_trace_ids_are_derived_from_the_rollout_attempt() -> None:
    trace_id, root = rollout_trace("r1", 1)
    assert (len(trace_id), len(root)) == (32, 16)
    assert rollout_trace("r1", 1) == (trace_id, root) != rollout_trace("r1", 2)
    active = Identity("r1", 1, "a").active()
    assert (active.trace_id, active.root_span_id, active.agent_name) == (trace_id, root, "a")


# -- rewriting and stripping --------------------------------------------------------------------


def test_the_gateway_asks_for_tokens_the_agent_did_not() -> None:
    chat = rewrite(CHAT | {"stream": True}, "chat", Resources(), SETTINGS)
    assert chat.body["logprobs"] is True
    assert chat.body["return_token_ids"] is True
    assert chat.body["stream_options"] == {"include_usage": True}
    assert chat.added == Added(logprobs=True, token_ids=True, usage=True)
    assert chat.changed

    text = rewrite({"model": "m", "prompt": "2+2="}, "text_completion", Resources(), SETTINGS)
    assert text.body["logprobs"] == 0  # legacy API: the sampled token's logprob only
    assert text.added == Added(logprobs=True, token_ids=True)


def test_what_the_agent_asked_for_is_left_alone() -> None:
    body = CHAT | {"logprobs": True, "return_token_ids": True}
    asked = rewrite(body, "chat", Resources(), SETTINGS)
    assert (asked.body, asked.changed, asked.added.any) == (body, False, False)
    uncaptured = rewrite(CHAT, "chat", Resources(), SETTINGS, capture=False)
    assert (uncaptured.body, uncaptured.changed) == (CHAT, False)


def test_versions_choose_the_model_and_the_system_prompt() -> None:
    resources = Resources(model_name="agent-v7", prompt_templates={"system": "Be brief."})
    settings = GatewaySettings(system_prompt_template="system", request_logprobs=False)
    inserted = rewrite(CHAT, "chat", resources, settings).body
    assert inserted["model"] == "agent-v7"
    assert inserted["messages"] == [{"role": "system", "content": "Be brief."}, *CHAT["messages"]]
    with_system = CHAT | {"messages": [{"role": "developer", "content": "old"}, {"role": "user"}]}
    replaced = rewrite(with_system, "chat", resources, settings).body
    assert replaced["messages"] == [{"role": "developer", "content": "Be brief."}, {"role": "user"}]
    off = GatewaySettings(model_from_version=False)
    assert rewrite(CHAT, "chat", resources, off).body["model"] == "m"


def test_strip_removes_what_only_the_gateway_asked_for() -> None:
    added = Added(logprobs=True, token_ids=True, usage=True)
    completion = {
        "id": "x",
        "prompt_token_ids": [1, 2],
        "choices": [{"index": 0, "logprobs": {"content": []}, "token_ids": [3]}],
        "usage": {"prompt_tokens": 2},
    }
    assert strip(completion, added, chunk=False) == {
        "id": "x",
        "choices": [{"index": 0, "logprobs": None}],
        "usage": {"prompt_tokens": 2},  # a non-streamed completion always has its usage
    }
    assert completion["prompt_token_ids"] == [1, 2]  # not modified
    chunk = {"id": "x", "choices": [{"index": 0, "token_ids": [3]}], "usage": None}
    assert strip(chunk, added, chunk=True) == {"id": "x", "choices": [{"index": 0}]}
    usage_chunk = {"id": "x", "choices": [], "usage": {"completion_tokens": 1}}
    assert strip(usage_chunk, added, chunk=True) is None
    assert strip(chunk, Added(), chunk=True) is chunk


def test_json_is_written_in_the_upstreams_style() -> None:
    data = {"a": [1, "é"]}
    assert dumps_like(data, b'{"a": [1]}') == '{"a": [1, "é"]}'.encode()
    assert dumps_like(data, b'{"a":[1]}') == '{"a":[1,"é"]}'.encode()


# -- server-sent events -------------------------------------------------------------------------


def test_events_are_split_wherever_the_bytes_break() -> None:
    stream = b'data: {"a": 1}\n\n: comment\n\ndata: [DONE]\n\n'
    for cut in range(len(stream) + 1):
        decoder = SseDecoder()
        events = decoder.feed(stream[:cut]) + decoder.feed(stream[cut:])
        assert [e.data for e in events] == ['{"a": 1}', None, "[DONE]"]
        assert b"".join(e.raw for e in events) == stream
        assert decoder.pending == b""


def test_crlf_streams_and_multi_line_data() -> None:
    decoder = SseDecoder()
    events = decoder.feed(b"data: a\r\n") + decoder.feed(b"data: b\r\n\r\ndata: c")
    assert [e.data for e in events] == ["a\nb"]
    assert decoder.pending == b"data: c"


# -- versions per agent -------------------------------------------------------------------------


def version(version_id: str, kind: str, target: str | None, **fields: Any) -> VersionEvent:
    return VersionEvent(
        meta=meta(), version_id=version_id, kind=kind, target_agent=target, **fields
    )


def test_each_agent_gets_the_last_version_of_each_kind_that_targets_it() -> None:
    versions = VersionState(Resources(model_version="base"), agent_name="calc")
    versions.apply([version("all-1", "model", None, model_name="m1")])
    versions.apply([version("calc-p", "prompt", "calc"), version("w-2", "model", "writer")])
    assert versions.for_agent("writer").model_version == "w-2"
    assert versions.for_agent("writer").resources_version == ""
    assert versions.for_agent(None) is versions.current
    assert (versions.current.model_version, versions.current.resources_version) == (
        "all-1",
        "calc-p",
    )
    assert versions.for_agent("other").model_name == "m1"
    versions.apply([version("all-3", "model", None)])  # untargeted, later: wins for everyone
    assert versions.for_agent("writer").model_version == "all-3"
    assert versions.for_agent("other").model_version == "all-3"


# -- text completions ---------------------------------------------------------------------------


def text_completion(text: str, ids: list[int], finish: str | None, **extra: Any) -> Completion:
    choice = {
        "index": 0,
        "text": text,
        "finish_reason": finish,
        "logprobs": {"tokens": [], "token_logprobs": [-0.5] * len(ids), "top_logprobs": []},
        "token_ids": ids,
    }
    data = {"id": "cmpl-1", "object": "text_completion", "created": 1, "model": "m"}
    return Completion.construct(**(data | {"choices": [choice]} | extra))


def test_text_completions_are_recorded_whole_and_streamed() -> None:
    request = {"model": "m", "prompt": "2+2=", "max_tokens": 2}
    whole = from_text_completion(request, text_completion("4.", [7, 8], "stop"))
    chunks = TextChunkAccumulator()
    chunks.add(text_completion("4", [7], None, prompt_token_ids=[1, 2]))
    chunks.add(text_completion(".", [8], "stop"))
    streamed = chunks.llm_call(request)
    assert streamed is not None
    assert whole.operation_name == streamed.operation_name == "text_completion"
    assert json.loads(whole.input_messages) == [{"role": "user", "content": "2+2="}]
    assert json.loads(streamed.output_messages) == [{"role": "assistant", "content": "4."}]
    assert streamed.prompt_token_ids == [1, 2]
    assert whole.response_token_ids == streamed.response_token_ids == [7, 8]
    assert whole.response_logprobs == streamed.response_logprobs == [-0.5, -0.5]
    assert streamed.finish_reasons == ["stop"]


@pytest.mark.parametrize(
    "body",
    [
        b'{"value": NaN}',
        b'{"value": Infinity}',
        b'{"value": -Infinity}',
        b'{"value": 1e999}',
        b'{"value": 1.0, "dimensions": {"exact": NaN}}',
    ],
)
def test_rewards_that_are_not_finite_are_refused_with_a_400(body: bytes, tmp_path: Path) -> None:
    bus = InProcessBus()
    settings = FulmenSettings(
        producer={"spill_dir": tmp_path, "capture_openai": False, "follow_versions": False}
    )
    producer = Producer(settings, transport=InProcessTransport(bus))
    gateway = Gateway(GatewaySettings(), producer)
    try:
        with TestClient(gateway.app()) as http:
            refused = http.post(
                "/rollouts/r1/rewards", content=body, headers={"content-type": "application/json"}
            )
            assert refused.status_code == 400
            error = refused.json()["error"]
            assert error["code"] == "invalid_body"
            assert "finite number" in error["message"]
            assert http.post("/rollouts/r1/rewards", json={"value": 0.5}).status_code == 200
        assert producer.flush(5)
    finally:
        gateway.close(1)
    codec = SingleObjectCodec()
    topic = settings.topics.for_event("reward")
    values = [
        codec.decode(m.value, topic=topic) for m in bus.read(topic, 0, max_messages=10, timeout_s=0)
    ]
    assert [(r.meta.rollout_id, r.value) for r in values if isinstance(r, Reward)] == [("r1", 0.5)]


def test_the_producers_delivery_figures_are_served_for_prometheus(tmp_path: Path) -> None:
    settings = FulmenSettings(
        producer={
            "spill_dir": tmp_path,
            "capture_openai": False,
            "follow_versions": False,
            "max_event_bytes": 300,
        }
    )
    producer = Producer(settings, transport=InProcessTransport(InProcessBus()))
    gateway = Gateway(GatewaySettings(), producer)
    try:
        with TestClient(gateway.app()) as http:
            assert http.post("/rollouts/r1/rewards", json={"value": 0.5}).status_code == 200
            long = {"value": 1.0, "comment": "x" * 1000}
            assert http.post("/rollouts/r1/rewards", json=long).status_code == 200
            assert not producer.flush(5)  # the long one was refused: the scrape says so
            scraped = http.get("/metrics")
    finally:
        gateway.close(1)
    assert scraped.status_code == 200
    samples = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in scraped.text.splitlines()
        if line and not line.startswith("#")
    }
    assert samples['fulmen_producer_events_total{outcome="emitted"}'] == 2
    assert samples['fulmen_producer_events_total{outcome="delivered"}'] == 1
    assert samples['fulmen_producer_events_total{outcome="oversize"}'] == 1
    assert samples["fulmen_producer_queued"] == 0
