"""The policy server over real HTTP, with the plain `openai` client, on tiny random models.

One server for the module: the base model `tiny` (seed 0); the tests load a LoRA adapter on
it and a full-weight model of another seed. Expected logprobs come from a fresh forward
pass of the same weights, loaded independently with `fulmen.models.load_policy`.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest
import torch
from openai.types.chat import ChatCompletion, ChatCompletionChunk, ChatCompletionMessageParam

from fulmen.models import load_policy, tiny_model_dir
from fulmen.serving import PolicyServer, Precision, SamplingParams, serve_in_thread
from tests.support.adapters import make_adapter

BASE = "tiny"
QUESTION: list[ChatCompletionMessageParam] = [{"role": "user", "content": "What is 3+4?"}]
TOKEN_IDS = {"return_token_ids": True}
DOCS = Path(__file__).resolve().parents[2] / "docs"


@dataclass(frozen=True)
class Stack:
    url: str
    server: PolicyServer
    base_dir: Path
    adapter_dir: Path
    other_dir: Path  # the full weights of another seed

    @property
    def client(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.url, api_key="unused", max_retries=0)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matmuls; 2 shared cores: threads only contend
    root = tmp_path_factory.mktemp("models")
    base_dir = tiny_model_dir(root / BASE, seed=0)
    other_dir = tiny_model_dir(root / "tiny-seed1", seed=1)
    adapter_dir = make_adapter(base_dir, root / "adapter")
    # fp32 whatever the CPU, so that logprobs match a fresh forward pass to 1e-4 everywhere;
    # test_bf16_autocast covers the other precision.
    server = PolicyServer(base_dir, name=BASE, precision="float32", model_roots=[root])
    try:
        with serve_in_thread(server) as url:
            yield Stack(url, server, base_dir, adapter_dir, other_dir)
    finally:
        torch.set_num_threads(threads)


def complete(stack: Stack, model: str = BASE, **kwargs: object) -> ChatCompletion:
    request: dict[str, object] = {
        "model": model,
        "messages": QUESTION,
        "max_tokens": 12,
        "temperature": 0,
        "logprobs": True,
        "extra_body": TOKEN_IDS,
    }
    return stack.client.chat.completions.create(**(request | kwargs))


def token_ids(response: ChatCompletion) -> list[int]:
    return response.choices[0].token_ids


def forward_logprobs(
    model_dir: Path,
    prompt: list[int],
    completion: list[int],
    adapter: Path | None = None,
    precision: Precision = "float32",
) -> torch.Tensor:
    """log_softmax at each completion position, from one fresh full-sequence forward pass."""
    model, _ = load_policy(model_dir, adapter=adapter)
    bf16 = precision == "bfloat16"
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        logits = model(torch.tensor([prompt + completion])).logits[0]  # [T, vocab]
    positions = torch.arange(len(prompt) - 1, len(prompt) + len(completion) - 1)
    return torch.log_softmax(logits[positions].float(), dim=-1)  # [completion, vocab]


# -- chat completions ---------------------------------------------------------------------------


def test_content_token_ids_and_logprobs_agree(stack: Stack) -> None:
    response = complete(stack, top_logprobs=3)
    choice = response.choices[0]
    ids = token_ids(response)
    _, tok = load_policy(stack.base_dir)
    assert choice.message.content == tok.decode(ids, skip_special_tokens=True)
    assert choice.logprobs is not None
    assert choice.logprobs.content is not None
    assert len(choice.logprobs.content) == len(ids) == 12
    assert [e.token for e in choice.logprobs.content] == [tok.decode([i]) for i in ids]
    assert all(len(e.top_logprobs) == 3 for e in choice.logprobs.content)
    assert response.usage is not None
    assert response.usage.completion_tokens == 12
    prompt = response.prompt_token_ids
    assert response.usage.prompt_tokens == len(prompt)
    expected_prompt = tok.apply_chat_template(QUESTION, add_generation_prompt=True, tokenize=False)
    assert tok.decode(prompt) == expected_prompt
    assert choice.finish_reason == "length"
    assert response.model == BASE
    assert response.object == "chat.completion"


def test_text_completions_stream_as_they_answer_with_the_raw_model_s_logprobs(
    stack: Stack,
) -> None:
    request: dict[str, object] = {
        "model": BASE,
        "prompt": "3+4=",
        "max_tokens": 6,
        "temperature": 0,
        "logprobs": 2,
        "extra_body": TOKEN_IDS,
    }
    whole = stack.client.completions.create(**request).to_dict()
    chunks = [c.to_dict() for c in stack.client.completions.create(**request, stream=True)]

    (choice,) = whole["choices"]
    _, tok = load_policy(stack.base_dir)
    prompt, ids = choice["prompt_token_ids"], choice["token_ids"]
    assert prompt == tok("3+4=")["input_ids"]
    assert choice["text"] == tok.decode(ids, skip_special_tokens=True)
    logprobs = choice["logprobs"]
    assert logprobs["tokens"] == [tok.decode([i]) for i in ids]
    assert all(len(top) <= 2 for top in logprobs["top_logprobs"])
    expected = forward_logprobs(stack.base_dir, prompt, ids)
    chosen = expected[torch.arange(len(ids)), torch.tensor(ids)]
    assert logprobs["token_logprobs"] == pytest.approx(chosen.tolist(), abs=1e-4)
    assert whole["object"] == "text_completion"
    assert whole["usage"]["completion_tokens"] == len(ids) == 6
    streamed = [c["choices"][0] for c in chunks if c["choices"]]
    assert "".join(c["text"] for c in streamed) == choice["text"]
    assert [i for c in streamed for i in c["token_ids"]] == ids
    assert streamed[0]["prompt_token_ids"] == prompt
    assert streamed[-1]["finish_reason"] == choice["finish_reason"] == "length"


def test_greedy_is_deterministic(stack: Stack) -> None:
    first, second = complete(stack), complete(stack)
    assert token_ids(first) == token_ids(second)
    assert first.choices[0].message.content == second.choices[0].message.content


def test_logprobs_are_the_raw_model_s(stack: Stack) -> None:
    """Even when sampling at another temperature: the reported logprobs are log_softmax of the
    logits at temperature 1 — what a trainer's forward pass computes."""
    for request in ({"temperature": 0}, {"temperature": 1.7, "top_p": 0.9, "seed": 5}):
        response = complete(stack, top_logprobs=2, max_tokens=16, **request)
        ids = token_ids(response)
        expected = forward_logprobs(stack.base_dir, response.prompt_token_ids, ids)
        content = response.choices[0].logprobs.content
        assert content is not None
        reported = torch.tensor([entry.logprob for entry in content])
        assert torch.allclose(reported, expected[torch.arange(len(ids)), ids], atol=1e-4)
        top = torch.tensor([[alt.logprob for alt in entry.top_logprobs] for entry in content])
        assert torch.allclose(top, expected.topk(2, dim=-1).values, atol=1e-4)


def test_seeded_sampling_is_reproducible(stack: Stack) -> None:
    sampled = [complete(stack, temperature=1.0, seed=11, max_tokens=16) for _ in range(2)]
    assert token_ids(sampled[0]) == token_ids(sampled[1])
    other = complete(stack, temperature=1.0, seed=12, max_tokens=16)
    assert token_ids(other) != token_ids(sampled[0])


def test_streaming_equals_non_streaming(stack: Stack) -> None:
    whole = complete(stack, max_tokens=20, top_logprobs=1)
    stream = stack.client.chat.completions.create(
        model=BASE,
        messages=QUESTION,
        max_tokens=20,
        temperature=0,
        logprobs=True,
        top_logprobs=1,
        stream=True,
        stream_options={"include_usage": True},
        extra_body=TOKEN_IDS,
    )
    chunks: list[ChatCompletionChunk] = list(stream)
    first, *middle, finish, last = chunks
    assert first.choices[0].delta.role == "assistant"
    assert first.prompt_token_ids == whole.prompt_token_ids
    assert all(not hasattr(c, "prompt_token_ids") for c in chunks[1:])
    assert finish.choices[0].finish_reason == whole.choices[0].finish_reason == "length"
    assert last.choices == []
    assert last.usage == whole.usage
    assert all(c.usage is None for c in chunks[:-1])
    assert len({c.id for c in chunks}) == 1
    content = "".join(c.choices[0].delta.content or "" for c in middle)
    assert content == whole.choices[0].message.content
    streamed_ids = [i for c in middle for i in c.choices[0].token_ids]
    assert streamed_ids == token_ids(whole)
    streamed_logprobs = [e for c in middle for e in c.choices[0].logprobs.content]
    assert streamed_logprobs == whole.choices[0].logprobs.content


def test_the_sse_wire_format(stack: Stack) -> None:
    body = {"model": BASE, "messages": QUESTION, "max_tokens": 2, "temperature": 0, "stream": True}
    with httpx.stream("POST", f"{stack.url}/chat/completions", json=body) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        text = response.read().decode()
    events = text.split("\n\n")
    assert events[-2:] == ["data: [DONE]", ""]
    payloads = [json.loads(event.removeprefix("data: ")) for event in events[:-2]]
    assert payloads[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert payloads[-1]["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "length",
    }
    assert all(p["object"] == "chat.completion.chunk" for p in payloads)
    assert all("usage" not in p and "token_ids" not in p["choices"][0] for p in payloads)


async def test_async_clients_interleave_without_mixing_up_requests(stack: Stack) -> None:
    """Concurrent requests decode step by step in turn, each with its own cache: each gets
    what it gets alone."""
    prompts = ["What is 3+4?", "Tom has 5 apples.", "Sum 12 and 30, please."]
    client = openai.AsyncOpenAI(base_url=stack.url, api_key="unused", max_retries=0)

    async def ask(prompt: str) -> list[int]:
        response = await client.chat.completions.create(
            model=BASE,
            messages=[{"role": "user", "content": prompt}],
            max_tokens=24,
            temperature=0,
            extra_body=TOKEN_IDS,
        )
        return response.choices[0].token_ids

    together = await asyncio.gather(*(ask(p) for p in prompts))
    alone = [await ask(p) for p in prompts]
    assert together == alone
    assert len({tuple(ids) for ids in alone}) == 3
    await client.close()


async def test_async_streaming(stack: Stack) -> None:
    client = openai.AsyncOpenAI(base_url=stack.url, api_key="unused", max_retries=0)
    stream = await client.chat.completions.create(
        model=BASE, messages=QUESTION, max_tokens=12, temperature=0, stream=True
    )
    text = "".join([chunk.choices[0].delta.content or "" async for chunk in stream])
    assert text == complete(stack).choices[0].message.content
    await client.close()


def test_a_stop_string_ends_the_content_before_it(stack: Stack) -> None:
    whole = complete(stack, max_tokens=16)
    content = whole.choices[0].message.content
    assert content is not None
    stop = next(m.group() for m in re.finditer(r"\w{2,}", content) if m.start() > 0)
    stopped = complete(stack, max_tokens=16, stop=[stop, "never appears"])
    assert stopped.choices[0].message.content == content[: content.index(stop)]
    assert stopped.choices[0].finish_reason == "stop"
    assert token_ids(whole)[: len(token_ids(stopped))] == token_ids(stopped)
    streamed = stack.client.chat.completions.create(
        model=BASE, messages=QUESTION, max_tokens=16, temperature=0, stop=stop, stream=True
    )
    chunks = list(streamed)
    assert (
        "".join(c.choices[0].delta.content or "" for c in chunks) == content[: content.index(stop)]
    )
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_tools_are_rendered_by_the_chat_template(stack: Stack) -> None:
    tool = {
        "type": "function",
        "function": {
            "name": "calculator",
            "description": "Evaluate an arithmetic expression.",
            "parameters": {"type": "object", "properties": {"expression": {"type": "string"}}},
        },
    }
    response = complete(stack, tools=[tool], max_tokens=2)
    _, tok = load_policy(stack.base_dir)
    prompt = tok.decode(response.prompt_token_ids)
    assert '"name": "calculator"' in prompt
    assert prompt.endswith("<|im_start|>assistant\n")


def test_bf16_autocast(stack: Stack) -> None:
    """Forward passes under bf16 autocast (the default on CPUs with AMX); the logprobs are
    still computed in fp32, from the bf16 logits."""
    server = PolicyServer(stack.base_dir, precision="bfloat16")
    assert server.name == BASE  # the directory's name
    with server.start(BASE, QUESTION, SamplingParams(max_tokens=6, temperature=0)) as generation:
        steps = list(generation)
    ids = [step.token_id for step in steps]
    expected = forward_logprobs(
        stack.base_dir, generation.prompt_token_ids, ids, precision="bfloat16"
    )
    reported = torch.tensor([step.logprobs.logprob for step in steps])
    assert torch.allclose(reported, expected[torch.arange(len(ids)), ids], atol=0.1)


# -- models: adapters and full weights ----------------------------------------------------------


def test_the_model_list(stack: Stack) -> None:
    models = stack.client.models.list().data
    assert models[0].id == BASE
    assert models[0].owned_by == "fulmen"
    assert models[0].max_model_len == 512  # vLLM's field


def test_a_lora_adapter_loads_serves_and_unloads(stack: Stack) -> None:
    base = complete(stack, max_tokens=16)
    http = httpx.Client(base_url=stack.url.removesuffix("/v1"))
    loaded = http.post(
        "/v1/load_lora_adapter", json={"lora_name": "tiny-v1", "lora_path": str(stack.adapter_dir)}
    )
    assert loaded.status_code == 200, loaded.text
    assert loaded.text == "Success: LoRA adapter 'tiny-v1' added successfully."
    listed = {m.id: m for m in stack.client.models.list().data}
    assert listed["tiny-v1"].parent == BASE

    adapted = complete(stack, model="tiny-v1", max_tokens=16)
    assert adapted.model == "tiny-v1"
    assert token_ids(adapted) != token_ids(base)
    expected = forward_logprobs(
        stack.base_dir, adapted.prompt_token_ids, token_ids(adapted), adapter=stack.adapter_dir
    )
    reported = torch.tensor([e.logprob for e in adapted.choices[0].logprobs.content])
    assert torch.allclose(reported, expected[torch.arange(16), token_ids(adapted)], atol=1e-4)
    assert token_ids(complete(stack, max_tokens=16)) == token_ids(base)  # the base is unchanged

    taken = http.post(
        "/v1/load_lora_adapter", json={"lora_name": "tiny-v1", "lora_path": str(stack.adapter_dir)}
    )
    assert taken.status_code == 400
    assert "already loaded" in taken.json()["error"]["message"]

    unloaded = http.post("/v1/unload_lora_adapter", json={"lora_name": "tiny-v1"})
    assert unloaded.status_code == 200, unloaded.text
    with pytest.raises(openai.NotFoundError) as gone:
        complete(stack, model="tiny-v1")
    assert gone.value.code == "model_not_found"
    assert http.post("/v1/unload_lora_adapter", json={"lora_name": "tiny-v1"}).status_code == 404
    assert "tiny-v1" not in {m.id for m in stack.client.models.list().data}


def test_full_weights_load_as_a_named_model(stack: Stack) -> None:
    http = httpx.Client(base_url=stack.url.removesuffix("/v1"))
    loaded = http.post(
        "/v1/load_model", json={"model_name": "tiny-v2", "model_path": str(stack.other_dir)}
    )
    assert loaded.status_code == 200, loaded.text
    version = complete(stack, model="tiny-v2", max_tokens=16)
    assert token_ids(version) != token_ids(complete(stack, max_tokens=16))
    expected = forward_logprobs(stack.other_dir, version.prompt_token_ids, token_ids(version))
    reported = torch.tensor([e.logprob for e in version.choices[0].logprobs.content])
    assert torch.allclose(reported, expected[torch.arange(16), token_ids(version)], atol=1e-4)
    # Each unload endpoint unloads its own kind only.
    assert http.post("/v1/unload_lora_adapter", json={"lora_name": "tiny-v2"}).status_code == 404
    assert http.post("/v1/unload_model", json={"model_name": "tiny-v2"}).status_code == 200
    with pytest.raises(openai.NotFoundError):
        complete(stack, model="tiny-v2")


def test_loading_and_unloading_do_not_disturb_in_flight_requests(stack: Stack) -> None:
    """A generation on an adapter keeps going while another adapter loads and its own
    adapter is unloaded; it ends exactly as an undisturbed one does. New requests get 404
    at once; the adapter's weights go when the generation is closed."""
    server = stack.server
    server.load_adapter("tiny-a", stack.adapter_dir)
    undisturbed = complete(stack, model="tiny-a", max_tokens=24)
    params = SamplingParams(max_tokens=24, temperature=0)
    with server.start("tiny-a", QUESTION, params) as generation:
        steps = iter(generation)
        ids = [next(steps).token_id for _ in range(3)]
        server.load_adapter("tiny-b", stack.adapter_dir)
        server.unload("tiny-a")
        with pytest.raises(openai.NotFoundError):
            complete(stack, model="tiny-a")
        assert token_ids(complete(stack, model="tiny-b", max_tokens=24)) == token_ids(undisturbed)
        ids += [step.token_id for step in steps]
        assert generation.finish_reason == "length"
        assert len(server._peft.peft_config) == 2  # tiny-a's layers stay while it runs
    assert len(server._peft.peft_config) == 1
    assert ids == token_ids(undisturbed)
    server.unload("tiny-b")
    assert [m.name for m in server.models()] == [BASE]
    assert token_ids(complete(stack, max_tokens=8)) == token_ids(complete(stack, max_tokens=8))


def test_a_dropped_stream_releases_its_model(stack: Stack) -> None:
    stack.server.load_adapter("tiny-c", stack.adapter_dir)
    body = {"model": "tiny-c", "messages": QUESTION, "max_tokens": 400, "stream": True}
    with httpx.stream("POST", f"{stack.url}/chat/completions", json=body) as response:
        next(response.iter_lines())
    stack.server.unload("tiny-c")  # the server notices the disconnect, then frees the adapter
    deadline = time.monotonic() + 30
    while len(stack.server._peft.peft_config) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(stack.server._peft.peft_config) == 0


# -- errors ----------------------------------------------------------------------------------


def test_an_unknown_model_is_a_404_in_openai_s_shape(stack: Stack) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        complete(stack, model="no-such-model")
    assert caught.value.status_code == 404
    assert caught.value.body == {
        "message": "The model `no-such-model` does not exist.",
        "type": "invalid_request_error",
        "param": "model",
        "code": "model_not_found",
    }


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"n": 2}, "n must be 1"),
        ({"max_tokens": 600}, "maximum context length is 512 tokens"),
        ({"messages": [{"role": "user", "content": "apples " * 600}]}, "maximum context length"),
        ({"top_logprobs": 21}, "top_logprobs"),
        ({"messages": []}, "messages"),
        ({"presence_penalty": 1.0}, "presence_penalty is not supported"),
    ],
)
def test_bad_requests_are_400s(stack: Stack, fields: dict[str, object], message: str) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        complete(stack, **fields)
    assert caught.value.status_code == 400
    assert message in caught.value.message


def test_malformed_bodies_and_routes(stack: Stack) -> None:
    http = httpx.Client(base_url=stack.url)
    not_json = http.post("/chat/completions", content=b"{not json")
    assert not_json.status_code == 400
    assert not_json.json()["error"]["type"] == "invalid_request_error"
    assert http.get("/no/such/route").status_code == 404
    assert set(http.get("/no/such/route").json()["error"]) == {"message", "type", "param", "code"}
    assert http.get("/chat/completions").status_code == 405
    nowhere = str(stack.adapter_dir.parent / "nonexistent")
    missing = http.post("/load_lora_adapter", json={"lora_name": "x", "lora_path": nowhere})
    assert missing.status_code == 400
    assert "not a PEFT adapter" in missing.json()["error"]["message"]
    not_a_model = http.post("/load_model", json={"model_name": "x", "model_path": nowhere})
    assert not_a_model.status_code == 400
    for route in ("/unload_model", "/unload_lora_adapter"):
        field = "model_name" if route == "/unload_model" else "lora_name"
        base = http.post(route, json={field: BASE})
        assert base.status_code == 400
        assert "cannot be unloaded" in base.json()["error"]["message"]
    with pytest.raises(Exception, match="cannot be unloaded"):
        stack.server.unload(BASE)
    assert [m.name for m in stack.server.models()] == [BASE]


def test_a_server_keeps_serving_after_errors(stack: Stack) -> None:
    assert complete(stack, max_tokens=1).choices[0].finish_reason == "length"


# -- docs ------------------------------------------------------------------------------------


def test_the_example_in_serving_md(capsys: pytest.CaptureFixture[str]) -> None:
    page = (DOCS / "serving.md").read_text()
    block = re.findall(r"```python\n(.*?)```", page, flags=re.DOTALL)[0]
    exec(compile(block, "docs/serving.md", "exec"), {})
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "['tiny']"
    assert out[1].startswith("length 8 8")
