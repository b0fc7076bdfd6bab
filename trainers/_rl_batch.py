"""Micro-batches for the RL step: length-sorted packing under a padded-token budget.

Logged traffic has very uneven lengths (a one-line tool call after a 3k-token history
sits next to a 40-token first turn), so padding every row to the longest of a random
batch wastes most of the compute. Sorting by length and cutting the sorted run where that
saves the most padding keeps rows of a micro-batch close in length.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from fulmen.trainers._samples import Sample


def micro_batches(
    samples: Sequence[Sample], *, max_tokens: int, overhead_tokens: int = 256
) -> list[list[Sample]]:
    """Pack `samples` into micro-batches of at most `max_tokens` padded tokens, padding little.

    A micro-batch of n rows whose longest row has L tokens (prompt + response) costs n·L
    padded tokens. Rows are sorted longest first and cut into contiguous runs that minimise
    padded tokens + `overhead_tokens` per micro-batch (the price of one more forward/backward:
    launches, smaller matmuls; 0 would give every distinct length its own micro-batch), by
    dynamic programming over the cut points: optimal, O(n · rows per micro-batch).

    Contract: every sample appears exactly once; each micro-batch stays within `max_tokens`,
    except that a sample longer than the budget on its own forms a micro-batch of one;
    micro-batches come longest first (an out-of-memory shows up at once) and ties keep input
    order, so the result is deterministic.
    """
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be positive, got {max_tokens}")
    if overhead_tokens < 0:
        raise ValueError(f"overhead_tokens must be non-negative, got {overhead_tokens}")
    ordered = sorted(samples, key=lambda s: s.num_tokens, reverse=True)  # stable
    n = len(ordered)
    best = [0] + [-1] * n  # best[j]: least cost of packing ordered[:j] (-1: not reached yet)
    start = [0] * (n + 1)  # start[j]: where the last micro-batch of that packing begins
    for i in range(n):  # a micro-batch ordered[i:j] is padded to ordered[i], its longest row
        width = ordered[i].num_tokens
        for j in range(i + 1, n + 1):
            if j > i + 1 and (j - i) * width > max_tokens:
                break
            cost = best[i] + (j - i) * width + overhead_tokens
            if best[j] < 0 or cost < best[j]:
                best[j], start[j] = cost, i
    batches: list[list[Sample]] = []
    j = n
    while j > 0:
        batches.append(ordered[start[j] : j])
        j = start[j]
    return batches[::-1]


@dataclass(frozen=True, slots=True)
class MicroBatch:
    """A micro-batch as tensors: rows are prompt + response, right-padded.

    Right padding matters: every pad follows all real tokens of its row, so causal
    attention never lets a real token see a pad and no attention mask is needed.
    """

    input_ids: Tensor  # (B, T) int64, pads are 0
    response_mask: Tensor  # (B, T) bool, True on response tokens
    behaviour_logprobs: Tensor  # (B, T) float32, logged logprobs on response tokens, else 0
    advantages: Tensor  # (B,) float32; (B, T) when packed
    tokens: int  # response tokens: response_mask.sum()
    position_ids: Tensor | None = None
    """(B, T) int64 for packed rows (`fulmen.trainers._rl_pack`), restarting at each sample;
    None for padded rows, whose positions are the model's default."""


def collate(batch: Sequence[Sample], *, device: torch.device | str) -> MicroBatch:
    """Lay `batch` out as a right-padded `MicroBatch` on `device`."""
    width = max(s.num_tokens for s in batch)
    input_ids = torch.zeros((len(batch), width), dtype=torch.long)
    response_mask = torch.zeros((len(batch), width), dtype=torch.bool)
    behaviour = torch.zeros((len(batch), width), dtype=torch.float32)
    for row, s in enumerate(batch):
        p, n = len(s.prompt_ids), s.num_tokens
        input_ids[row, :n] = torch.tensor(s.prompt_ids + s.response_ids)
        response_mask[row, p:n] = True
        behaviour[row, p:n] = torch.tensor(s.behaviour_logprobs)
    advantages = torch.tensor([s.advantage for s in batch], dtype=torch.float32)
    return on_device(batch, input_ids, response_mask, behaviour, advantages, device=device)


def on_device(
    batch: Sequence[Sample],
    input_ids: Tensor,
    response_mask: Tensor,
    behaviour: Tensor,
    advantages: Tensor,
    *,
    device: torch.device | str,
    position_ids: Tensor | None = None,
) -> MicroBatch:
    """The `MicroBatch` of `batch` laid out in these host tensors, moved to `device`."""
    return MicroBatch(
        input_ids=input_ids.to(device),
        response_mask=response_mask.to(device),
        behaviour_logprobs=behaviour.to(device),
        advantages=advantages.to(device),
        tokens=sum(len(s.response_ids) for s in batch),
        position_ids=None if position_ids is None else position_ids.to(device),
    )
