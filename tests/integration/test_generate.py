"""The trainer's batched generation on the tiny model: the shared-head cache changes nothing
but the speed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from fulmen.models import tiny_model_dir
from fulmen.models._precision import Precision
from fulmen.trainers._generate import Generation, generate, prompt_ids
from fulmen.trainers._shared_head import MIN_SHARED_HEAD

pytestmark = pytest.mark.integration

SYSTEM = "You answer with a calculator call in JSON. Reply with one object and nothing else."


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _conversations() -> list[list[dict[str, str]]]:
    questions = ["3 + 4?", "How many apples are left after 9 - 2?", "12 * 7", "x"]
    return [
        [{"role": "system", "content": SYSTEM}, {"role": "user", "content": q}] for q in questions
    ]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model_dir(tmp_path_factory.mktemp("tiny"))


def _run(directory: Path, monkeypatch: pytest.MonkeyPatch, *, shared_head: bool,
         temperature: float, precision: Precision) -> list[Generation]:  # fmt: skip
    model = AutoModelForCausalLM.from_pretrained(directory).eval()
    tokenizer = AutoTokenizer.from_pretrained(directory)
    if not shared_head:
        monkeypatch.setattr("fulmen.trainers._generate.shared_head", lambda prompts: 0)
    return generate(model, tokenizer, _conversations(), max_new_tokens=12,
                    temperature=temperature, batch_size=3, seed=5,
                    precision=precision)  # fmt: skip


def _common_prefix(a: tuple[int, ...], b: tuple[int, ...]) -> int:
    return next(
        (i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b))
    )


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_the_shared_head_cache_gives_what_full_prompts_give_in_fp32(
    tiny: Path, monkeypatch: pytest.MonkeyPatch, temperature: float
) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny)
    first, second = (prompt_ids(tokenizer, c) for c in _conversations()[:2])
    shared = next(i for i, (a, b) in enumerate(zip(first, second, strict=False)) if a != b)
    assert shared >= MIN_SHARED_HEAD  # the cached path is the one taken
    cached = _run(tiny, monkeypatch, shared_head=True, temperature=temperature, precision="fp32")
    plain = _run(tiny, monkeypatch, shared_head=False, temperature=temperature, precision="fp32")
    assert [g.prompt_ids for g in cached] == [g.prompt_ids for g in plain]
    assert [g.response_ids for g in cached] == [g.response_ids for g in plain]
    assert [g.text for g in cached] == [g.text for g in plain]
    for a, b in zip(cached, plain, strict=True):
        assert a.logprobs == pytest.approx(b.logprobs, abs=1e-4)
    assert all(g.response_ids and len(g.logprobs) == len(g.response_ids) for g in cached)


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_the_shared_head_cache_agrees_with_full_prompts_within_bf16_rounding(
    tiny: Path, monkeypatch: pytest.MonkeyPatch, temperature: float
) -> None:
    """bf16 autocast, forced, so the path CPUs with bf16 units (and GPUs) take is covered on
    every CPU. bf16 keeps 8 bits of mantissa: a logit near 10 carries about 0.04 of rounding,
    and the cached head is computed in another shape than the full prompt, so it rounds
    differently. Where two tokens are that close, the paths may pick differently: the
    logprobs are compared up to the first such token."""
    cached = _run(tiny, monkeypatch, shared_head=True, temperature=temperature, precision="bf16")
    plain = _run(tiny, monkeypatch, shared_head=False, temperature=temperature, precision="bf16")
    assert [g.prompt_ids for g in cached] == [g.prompt_ids for g in plain]
    for a, b in zip(cached, plain, strict=True):
        same = _common_prefix(a.response_ids, b.response_ids)
        assert same > 0
        assert a.logprobs[:same] == pytest.approx(b.logprobs[:same], abs=0.15)
        assert len(a.logprobs) == len(a.response_ids)
