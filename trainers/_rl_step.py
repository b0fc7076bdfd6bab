"""One RL optimizer step over logged samples: forward, logprobs, loss, backward, clip, step.

Where the FLOPs go and what this file does about it:

- Only response tokens are scored. The LM head (vocab 49k for SmolLM2, 151k for Qwen2)
  runs on the hidden states of the positions that predict a response token, never on
  prompt positions, and in chunks whose logits are recomputed in the backward pass
  instead of stored: the (tokens, vocab) fp32 logits are never materialised at once.
- Rows are length-sorted into micro-batches under a padded-token budget
  (`micro_batches`) and right-padded, so attention needs no mask (SDPA's causal fast path).
  On a GPU, `layout="packed"` lays each micro-batch's samples end to end in one row with
  no padding instead (`fulmen.trainers._rl_pack`), for flex attention's document mask.
- The head all prompts of a micro-batch share (`shared_head`: system prompt, examples) runs
  once, its keys/values shared by every row.
- bf16 autocast where the hardware has bf16 matmuls (CUDA; CPUs with AMX/AVX512-BF16);
  `precision="fp32"` elsewhere: on an AVX2-only CPU, bf16 matmuls are ~8x slower.

Sharded (a `ResponseLogprobs` under FSDP2, `fulmen.trainers._fsdp`), each rank steps on its
share of the step's samples and the ranks agree on the step's token count and micro-batch
count first (`_agree`), so the update is the same as one process's over all samples.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import astuple, dataclass
from typing import Literal, assert_never

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.distributed.fsdp import FSDPModule
from torch.distributed.tensor import DTensor

from fulmen.trainers._logprobs import CausalLM, ResponseLogprobs, response_logprobs
from fulmen.trainers._rl_batch import MicroBatch, collate, micro_batches
from fulmen.trainers._rl_loss import policy_loss
from fulmen.trainers._rl_pack import pack, packed_micro_batches
from fulmen.trainers._samples import Sample
from fulmen.trainers._shared_head import shared_head

Precision = Literal["bf16", "fp32"]
Layout = Literal["padded", "packed"]

_IDLE = Sample(prompt_ids=(0,), response_ids=(0,), behaviour_logprobs=(0.0,), advantage=0.0)
"""The row of a sharded rank's idle micro-batch: it has run out of its own micro-batches
while other ranks have not, and must still make the same forward/backward collectives."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RLStepConfig:
    """Knobs of `rl_step`; the loss knobs are `policy_loss`'s."""

    max_tokens: int = 8192
    """Tokens the model reads per micro-batch (padded: rows x longest row; packed: the packed
    row before bucket padding): the activation-memory budget."""
    layout: Layout = "padded"
    """`padded`: length-sorted rows, right-padded (`micro_batches`), with the shared-head
    reuse; what every attention implementation runs well, and the CPU default. `packed`:
    samples end to end in one row per micro-batch (`packed_micro_batches`), no padding, for a
    model with `flex_attention` (a document BlockMask); no shared-head reuse (the head is
    recomputed per sample)."""
    pack_bucket_tokens: int = 1
    """Packed rows are padded up to a multiple of this: a compiled model sees few shapes."""
    micro_batch_overhead_tokens: int = 4096
    """What one more micro-batch costs, in padded tokens: the packer splits only where that
    saves more padding (see `micro_batches`). About the tokens the device processes while the
    host launches one micro-batch's ~4k kernels: thousands on a GPU (8192 measured best for a
    0.5B model on an H200), tens on a CPU."""
    clip_low: float = 0.2
    clip_high: float = 0.28
    tis_cap: float = 2.0
    kl_beta: float = 0.0
    """Weight of the k3 KL to `ref_model`; nonzero needs a `ref_model`."""
    max_grad_norm: float = 1.0
    precision: Precision = "bf16"
    """Autocast dtype of the forward; the weights and the optimizer stay as they are."""
    head_chunk_tokens: int = 1024
    """Response tokens per LM-head chunk: bounds the transient (chunk, vocab) logits."""


@dataclass(frozen=True, slots=True)
class StepStats:
    """What one `rl_step` did. Loss statistics are token-weighted means over the step."""

    loss: float
    tokens: int  # response tokens trained on
    padded_tokens: int  # tokens the model read, pads included
    micro_batches: int
    grad_norm: float  # before clipping
    clip_fraction: float
    tis_mean: float
    tis_truncated_fraction: float
    kl_mean: float
    seconds: float  # wall time of the whole step, device work included


def rl_step(
    model: CausalLM | ResponseLogprobs,
    optimizer: torch.optim.Optimizer,
    samples: Sequence[Sample],
    *,
    config: RLStepConfig,
    ref_model: CausalLM | None = None,
) -> StepStats:
    """One optimizer step of the decoupled PPO/TIS objective over all of `samples`.

    Gradients accumulate over length-sorted micro-batches; the loss is the mean over every
    response token of the step (not a mean of micro-batch means), then the gradient norm
    is clipped to `config.max_grad_norm` and `optimizer` steps once. The old (proximal)
    logprobs are the current weights' own, detached: with one optimizer step per call they
    equal a no-grad recomputation exactly, without paying for it. Gradients are cleared
    before and after. `ref_model`, needed when `config.kl_beta` is nonzero, runs without grad.

    `model` sharded with FSDP2 (`shard_policy`): `samples` are this rank's share of the step
    (possibly none) and every rank of the group calls `rl_step` together. The token mean is
    over all ranks' samples, and the returned statistics are the whole step's.
    """
    sharded = isinstance(model, FSDPModule)
    if config.kl_beta != 0.0 and ref_model is None:
        raise ValueError("RLStepConfig.kl_beta is nonzero but no ref_model was given")
    if sharded and config.kl_beta != 0.0:
        raise ValueError("a sharded rl_step takes no KL term (kl_beta must be 0)")
    if not samples and not sharded:
        raise ValueError("rl_step needs at least one sample")
    start = time.perf_counter()
    device = next(model.parameters()).device
    total = sum(len(s.response_ids) for s in samples)  # the loss normaliser of the whole step
    packed = config.layout == "packed"
    batches = (
        packed_micro_batches(samples, max_tokens=config.max_tokens)
        if packed
        else micro_batches(
            samples, max_tokens=config.max_tokens,
            overhead_tokens=config.micro_batch_overhead_tokens,
        )
    )  # fmt: skip
    scale = 1.0
    if sharded:
        total, rounds = _agree(total, len(batches), device)
        batches += [[_IDLE]] * (rounds - len(batches))
        scale = float(dist.get_world_size())  # FSDP averages the ranks' gradients; undo that
    model.train()
    optimizer.zero_grad(set_to_none=True)
    loss_sum, stat_sums, padded = torch.zeros((), device=device), [0.0] * 4, 0
    for batch in batches:
        idle = batch[0] is _IDLE
        mb = (  # input_ids, masks, behaviour: (B, T) (packed: B = 1); advantages: (B,) | (B, T)
            pack(batch, device=device, bucket=config.pack_bucket_tokens)
            if packed
            else collate(batch, device=device)
        )
        # run once for all rows; sharded, every rank must make the same forward calls
        head = 0 if sharded or packed else shared_head([s.prompt_ids for s in batch])
        padded += 0 if idle else mb.input_ids.numel() - head * (len(batch) - 1)
        with _autocast(device, config.precision):
            logprobs = _response_logprobs(model, mb, config, head)  # (B, T), 0 off responses
            ref = _reference_logprobs(ref_model, mb, config, head) if config.kl_beta else None
        loss, stats = policy_loss(  # token mean over this micro-batch, fp32 outside autocast
            logprobs, logprobs.detach(), mb.behaviour_logprobs, mb.advantages, mb.response_mask,
            clip_low=config.clip_low, clip_high=config.clip_high, tis_cap=config.tis_cap,
            ref_logprobs=ref, kl_beta=config.kl_beta,
        )  # fmt: skip
        weight = 0.0 if idle else mb.tokens / total  # a token mean over the whole step
        torch.autograd.backward(loss * (weight * scale))  # gradients add up across micro-batches
        loss_sum += loss.detach() * weight
        stat_sums = [acc + v * weight for acc, v in zip(stat_sums, astuple(stats), strict=True)]
    grad_norm = nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    if sharded:  # each rank summed its own micro-batches' share of the step's means
        loss_sum, stat_sums, padded = _summed(loss_sum, stat_sums, padded)
        grad_norm = grad_norm.full_tensor() if isinstance(grad_norm, DTensor) else grad_norm
    loss_value, norm_value = loss_sum.item(), grad_norm.item()  # the host waits for the device here
    if device.type == "cuda":
        torch.cuda.synchronize(device)  # the optimizer's kernels too, so `seconds` is honest
    clip, tis, truncated, kl = stat_sums
    return StepStats(
        loss=loss_value, tokens=total, padded_tokens=padded, micro_batches=len(batches),
        grad_norm=norm_value, clip_fraction=clip, tis_mean=tis, tis_truncated_fraction=truncated,
        kl_mean=kl, seconds=time.perf_counter() - start,
    )  # fmt: skip


def _response_logprobs(
    model: CausalLM | ResponseLogprobs, mb: MicroBatch, config: RLStepConfig, head: int
) -> Tensor:
    if isinstance(model, ResponseLogprobs):  # one module call: FSDP's hooks gather the shards
        out: Tensor = model(
            mb.input_ids, mb.response_mask, chunk_tokens=config.head_chunk_tokens, head=head,
            position_ids=mb.position_ids,
        )  # fmt: skip
        return out
    return response_logprobs(
        model, mb.input_ids, None, mb.response_mask, chunk_tokens=config.head_chunk_tokens,
        head=head, position_ids=mb.position_ids,
    )  # fmt: skip


def _agree(tokens: int, micro_batches: int, device: torch.device) -> tuple[int, int]:
    """The step's response tokens over all ranks, and the most micro-batches any rank has."""
    counts = torch.tensor([tokens, -micro_batches], dtype=torch.float64, device=device)
    summed, most = counts.clone(), counts.clone()
    dist.all_reduce(summed, op=dist.ReduceOp.SUM)
    dist.all_reduce(most, op=dist.ReduceOp.MIN)
    if summed[0].item() == 0:
        raise ValueError("rl_step needs at least one sample on some rank")
    return int(summed[0].item()), int(-most[1].item())


def _summed(
    loss_sum: Tensor, stat_sums: list[float], padded: int
) -> tuple[Tensor, list[float], int]:
    """The ranks' partial sums added up: the whole step's statistics on every rank."""
    rest = torch.tensor([*stat_sums, padded], dtype=torch.float64, device=loss_sum.device)
    parts = torch.cat([loss_sum.double().reshape(1), rest])  # (6,)
    dist.all_reduce(parts, op=dist.ReduceOp.SUM)
    values = parts.tolist()
    return parts[0], values[1:5], int(values[5])


def _reference_logprobs(
    ref_model: CausalLM | None, mb: MicroBatch, config: RLStepConfig, head: int
) -> Tensor:
    assert ref_model is not None  # rl_step checked it
    ref_model.train(False)  # eval mode; `eval()` is unannotated in transformers
    with torch.no_grad():
        return response_logprobs(
            ref_model, mb.input_ids, None, mb.response_mask,
            chunk_tokens=config.head_chunk_tokens, head=head, position_ids=mb.position_ids,
        )  # fmt: skip


def _autocast(device: torch.device, precision: Precision) -> AbstractContextManager[None]:
    match precision:
        case "bf16":
            return torch.autocast(device.type, dtype=torch.bfloat16)
        case "fp32":
            return torch.autocast(device.type, enabled=False)
        case _:
            assert_never(precision)
