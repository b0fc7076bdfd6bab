"""Packed micro-batches for the RL step: every sample of a micro-batch in one row, no padding.

Padded rows (`fulmen.trainers._rl_batch`) cost the longest row's length for every row; on a
GPU they also force many small micro-batches to keep that waste down. Packed, a micro-batch
is the samples laid end to end in one row of `max_tokens` or fewer real tokens, each sample's
position ids restarting at 0. transformers reads restarting position ids (with no attention
mask) as documents and masks attention block-diagonally (`find_packed_sequence_indices`):
with `flex_attention` the mask is a sparse BlockMask and cross-document blocks are skipped,
with `sdpa` it is a dense (T, T) mask (right, but the whole square is computed).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from fulmen.trainers._rl_batch import MicroBatch, on_device
from fulmen.trainers._samples import Sample

PAD_DOCUMENT = 64
"""Bucket padding is cut into documents of this many tokens (position ids restart), so its
attention costs little and no real token ever sees it."""


def packed_micro_batches(samples: Sequence[Sample], *, max_tokens: int) -> list[list[Sample]]:
    """Samples into micro-batches of at most `max_tokens` real tokens, first fit decreasing.

    Contract: every sample appears exactly once; a sample longer than `max_tokens` forms a
    micro-batch of one; micro-batches come fullest first; ties keep input order, so the
    result is deterministic.
    """
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be positive, got {max_tokens}")
    bins: list[list[Sample]] = []
    loads: list[int] = []
    for sample in sorted(samples, key=lambda s: s.num_tokens, reverse=True):  # stable
        room = max_tokens - sample.num_tokens
        fit = next((i for i, load in enumerate(loads) if load <= room), -1)
        if fit < 0:
            bins.append([sample])
            loads.append(sample.num_tokens)
        else:
            bins[fit].append(sample)
            loads[fit] += sample.num_tokens
    order = sorted(range(len(bins)), key=lambda i: -loads[i])
    return [bins[i] for i in order]


def pack(batch: Sequence[Sample], *, device: torch.device | str, bucket: int = 1) -> MicroBatch:
    """Lay `batch` out as one packed row on `device`, its length rounded up to a multiple of
    `bucket` (a compiled model then sees few distinct shapes); the padding is pad documents
    of `PAD_DOCUMENT` tokens, never scored. Advantages are per token, (1, T)."""
    if bucket < 1:
        raise ValueError(f"bucket must be positive, got {bucket}")
    real = sum(s.num_tokens for s in batch)
    width = -(-real // bucket) * bucket
    input_ids = torch.zeros((1, width), dtype=torch.long)
    position_ids = torch.arange(width, dtype=torch.long).unsqueeze(0)
    response_mask = torch.zeros((1, width), dtype=torch.bool)
    behaviour = torch.zeros((1, width), dtype=torch.float32)
    advantages = torch.zeros((1, width), dtype=torch.float32)
    at = 0
    for s in batch:
        p, n = len(s.prompt_ids), s.num_tokens
        input_ids[0, at : at + n] = torch.tensor(s.prompt_ids + s.response_ids)
        position_ids[0, at : at + n] = torch.arange(n)
        response_mask[0, at + p : at + n] = True
        behaviour[0, at + p : at + n] = torch.tensor(s.behaviour_logprobs)
        advantages[0, at + p : at + n] = s.advantage
        at += n
    position_ids[0, real:] = torch.arange(width - real) % PAD_DOCUMENT
    return on_device(
        batch, input_ids, response_mask, behaviour, advantages, device=device,
        position_ids=position_ids,
    )  # fmt: skip
