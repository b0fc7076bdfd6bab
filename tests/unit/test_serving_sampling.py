"""Token choice and reported logprobs (fulmen.serving._sampling)."""

from __future__ import annotations

import math

import pytest
import torch

from fulmen.serving._sampling import MIN_LOGPROB, SamplingParams, choose_token, token_logprobs

LOGITS = torch.log(torch.tensor([0.1, 0.5, 0.3, 0.1]))


def draws(params: SamplingParams, n: int = 400, seed: int = 0) -> list[int]:
    generator = torch.Generator().manual_seed(seed)
    return [choose_token(LOGITS, params, generator) for _ in range(n)]


def test_temperature_zero_is_argmax_and_ties_go_to_the_lowest_id() -> None:
    greedy = SamplingParams(max_tokens=1, temperature=0)
    assert choose_token(LOGITS, greedy, None) == 1
    assert choose_token(torch.tensor([0.0, 2.0, 2.0]), greedy, None) == 1


def test_top_p_samples_only_inside_the_nucleus() -> None:
    assert set(draws(SamplingParams(max_tokens=1, top_p=0.75))) == {1, 2}
    assert set(draws(SamplingParams(max_tokens=1, top_p=0.01))) == {1}
    assert set(draws(SamplingParams(max_tokens=1))) == {0, 1, 2, 3}


def test_a_seed_makes_sampling_reproducible() -> None:
    params = SamplingParams(max_tokens=1, temperature=1.5)
    assert draws(params, seed=7) == draws(params, seed=7)
    assert draws(params, seed=7) != draws(params, seed=8)


def test_sampling_follows_the_temperature() -> None:
    hot = draws(SamplingParams(max_tokens=1, temperature=2.0), n=2000)
    cold = draws(SamplingParams(max_tokens=1, temperature=0.25), n=2000)
    assert cold.count(1) > hot.count(1)


def test_reported_logprobs_are_the_raw_log_softmax() -> None:
    logits = torch.tensor([1.0, 3.0, 2.0, -1.0], dtype=torch.bfloat16)
    reported = token_logprobs(logits, 2, top=3)
    expected = torch.log_softmax(logits.float(), dim=-1)
    assert reported.logprob == pytest.approx(float(expected[2]))
    assert [token for token, _ in reported.top] == [1, 2, 0]
    assert [lp for _, lp in reported.top] == pytest.approx(expected[[1, 2, 0]].tolist())
    assert token_logprobs(logits, 2, top=0).top == ()


def test_top_is_capped_at_the_vocabulary() -> None:
    assert len(token_logprobs(LOGITS, 0, top=20).top) == 4


def test_impossible_tokens_report_a_finite_floor() -> None:
    logits = torch.tensor([0.0, -math.inf])
    reported = token_logprobs(logits, 1, top=2)
    assert reported.logprob == MIN_LOGPROB
    assert reported.top[1] == (1, MIN_LOGPROB)
