"""Choosing the next token, and the logprobs reported for it.

The two are kept apart on purpose: the reported logprobs are those of the *raw* model
distribution, ``log_softmax(logits)`` in fp32 at temperature 1, before temperature and
top-p reshape it for sampling. Trainers use them as the behaviour policy's logprobs in
importance ratios, and those must be comparable with the trainer's own forward pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

__all__ = ["SamplingParams", "TokenLogprobs", "choose_token", "token_logprobs"]

MIN_LOGPROB = -9999.0
"""Stands in for ``-inf`` (a token of probability 0 in fp32), which JSON cannot carry; vLLM
reports the same value."""


@dataclass(frozen=True, slots=True)
class SamplingParams:
    """How one request samples.

    ``max_tokens`` ``None`` generates up to the model's context length.
    ``temperature`` 0 is greedy (argmax; ties go to the lowest token id). ``top_p`` keeps the
    smallest set of most likely tokens whose probability reaches ``top_p`` (at least one).
    ``seed`` makes sampling reproducible; ``None`` draws a fresh seed. ``top_logprobs`` is
    how many most likely alternatives to report per position (0: none).
    """

    max_tokens: int | None = None
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    top_logprobs: int = 0


@dataclass(frozen=True, slots=True)
class TokenLogprobs:
    """The raw model's logprob of the chosen token, and its ``top`` alternatives as
    ``(token_id, logprob)`` from most to least likely."""

    logprob: float
    top: tuple[tuple[int, float], ...] = ()


def choose_token(
    logits: torch.Tensor, params: SamplingParams, generator: torch.Generator | None
) -> int:
    """Pick the next token from ``logits`` (shape ``[vocab]``, any float dtype)."""
    import torch

    if params.temperature == 0:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits.float() / params.temperature, dim=-1)  # [vocab]
    if params.top_p < 1.0:
        probs = _top_p(probs, params.top_p)
    return int(torch.multinomial(probs, 1, generator=generator))


def _top_p(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """Zero every token outside the nucleus; the rest keep their relative weights."""
    import torch

    sorted_probs, order = torch.sort(probs, descending=True)
    before = torch.cumsum(sorted_probs, dim=-1) - sorted_probs  # mass of the likelier tokens
    sorted_probs[before >= top_p] = 0.0  # the most likely token always has before == 0
    return torch.zeros_like(probs).scatter_(-1, order, sorted_probs)


def token_logprobs(logits: torch.Tensor, token_id: int, top: int) -> TokenLogprobs:
    """The raw distribution's logprob of ``token_id`` and its ``top`` most likely tokens."""
    import torch

    logprobs = torch.log_softmax(logits.float(), dim=-1)  # [vocab], fp32 whatever the model ran in
    chosen = _finite(float(logprobs[token_id]))
    if top <= 0:
        return TokenLogprobs(chosen)
    values, ids = torch.topk(logprobs, min(top, logprobs.shape[-1]))
    alternatives = tuple(
        (int(i), _finite(float(v))) for i, v in zip(ids.tolist(), values.tolist(), strict=True)
    )
    return TokenLogprobs(chosen, alternatives)


def _finite(logprob: float) -> float:
    return max(logprob, MIN_LOGPROB)
