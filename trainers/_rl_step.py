"""One RL optimizer step over logged samples: forward, logprobs, loss, backward, clip, step.

Where the FLOPs go and what this file does about it:

- Only response tokens are scored. The LM head (vocab 49k for SmolLM2, 151k for Qwen2)
  runs on the hidden states of the positions that predict a response token, never on
  prompt positions, and in chunks whose logits are recomputed in the backward pass
  instead of stored: the (tokens, vocab) fp32 logits are never materialised at once.
- Rows are length-sorted into micro-batches under a padded-token budget
  (`micro_batches`) and right-padded, so attention needs no mask (SDPA's causal fast path).
- The head all prompts of a micro-batch share (`shared_head`: system prompt, examples) runs
  once, its keys/values shared by every row.
- bf16 autocast where the hardware has bf16 matmuls (CUDA; CPUs with AMX/AVX512-BF16);
  `precision="fp32"` elsewhere: on an AVX2-only CPU, bf16 matmuls are ~8x slower.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import astuple, dataclass
from typing import Literal, TypeAlias, assert_never

import torch
import torch.nn.functional as F
from peft import PeftModel
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint
from transformers import DynamicCache, PreTrainedModel

from fulmen.trainers._rl_batch import MicroBatch, collate, micro_batches
from fulmen.trainers._rl_loss import policy_loss
from fulmen.trainers._samples import Sample
from fulmen.trainers._shared_head import shared_head

Precision = Literal["bf16", "fp32"]
CausalLM: TypeAlias = PreTrainedModel | PeftModel
"""A transformers causal LM, or a PEFT (e.g. LoRA) wrapper of one: gradients reach whatever
parameters require them."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RLStepConfig:
    """Knobs of `rl_step`; the loss knobs are `policy_loss`'s."""

    max_tokens: int = 8192
    """Padded tokens (rows x longest row) per micro-batch: the activation-memory budget."""
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
    model: CausalLM,
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
    """
    if config.kl_beta != 0.0 and ref_model is None:
        raise ValueError("RLStepConfig.kl_beta is nonzero but no ref_model was given")
    if not samples:
        raise ValueError("rl_step needs at least one sample")
    start = time.perf_counter()
    device = next(model.parameters()).device
    total = sum(len(s.response_ids) for s in samples)  # the loss normaliser of the whole step
    batches = micro_batches(
        samples, max_tokens=config.max_tokens, overhead_tokens=config.micro_batch_overhead_tokens
    )
    model.train()
    optimizer.zero_grad(set_to_none=True)
    loss_sum, stat_sums, padded = torch.zeros((), device=device), [0.0] * 4, 0
    for batch in batches:
        mb = collate(batch, device=device)  # input_ids, masks, behaviour: (B, T); advantages: (B,)
        head = shared_head([s.prompt_ids for s in batch])  # run once for all rows
        padded += mb.input_ids.numel() - head * (len(batch) - 1)
        with _autocast(device, config.precision):
            logprobs = response_logprobs(  # (B, T): log π(token | prefix) on responses, else 0
                model, mb.input_ids, None, mb.response_mask,
                chunk_tokens=config.head_chunk_tokens, head=head,
            )  # fmt: skip
            ref = _reference_logprobs(ref_model, mb, config, head) if config.kl_beta else None
        loss, stats = policy_loss(  # token mean over this micro-batch, fp32 outside autocast
            logprobs, logprobs.detach(), mb.behaviour_logprobs, mb.advantages, mb.response_mask,
            clip_low=config.clip_low, clip_high=config.clip_high, tis_cap=config.tis_cap,
            ref_logprobs=ref, kl_beta=config.kl_beta,
        )  # fmt: skip
        weight = mb.tokens / total  # re-weight to a token mean over the whole step
        torch.autograd.backward(loss * weight)  # gradients add up across micro-batches
        loss_sum += loss.detach() * weight
        stat_sums = [acc + v * weight for acc, v in zip(stat_sums, astuple(stats), strict=True)]
    grad_norm = nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    loss_value, norm_value = loss_sum.item(), grad_norm.item()  # the host waits for the device here
    if device.type == "cuda":
        torch.cuda.synchronize(device)  # the optimizer's kernels too, so `seconds` is honest
    clip, tis, truncated, kl = stat_sums
    return StepStats(
        loss=loss_value, tokens=total, padded_tokens=padded, micro_batches=len(batches),
        grad_norm=norm_value, clip_fraction=clip, tis_mean=tis, tis_truncated_fraction=truncated,
        kl_mean=kl, seconds=time.perf_counter() - start,
    )  # fmt: skip


def response_logprobs(
    model: CausalLM,
    input_ids: Tensor,
    attention_mask: Tensor | None,
    response_mask: Tensor,
    *,
    chunk_tokens: int = 1024,
    head: int = 0,
) -> Tensor:
    """Per-token logprobs of the response tokens, without full-vocab logits for the prompt.

    `input_ids` (B, T) are prompt + response rows; `response_mask` (B, T) is True on the
    response tokens, which must not sit at position 0 (they need a context). Returns a
    (B, T) fp32 tensor: `out[b, t] = log softmax(logits(input_ids[b, :t]))[input_ids[b, t]]`
    where `response_mask[b, t]`, and 0 elsewhere; differentiable when grad is enabled.
    `attention_mask` goes to the model; None is right for right-padded rows (causal
    attention never reaches the trailing pads). The model must be a causal LM whose logits
    are `get_output_embeddings()` applied to `get_decoder()`'s last hidden state (Llama,
    Qwen2, Mistral…; a PEFT wrapper of one, adapters in the head included).
    `head` > 0 says the first `head` tokens are the same in every row (`shared_head`) and
    hold no response token nor its predictor: they run once, as a batch of one, and their
    keys/values serve every row. Same result and gradients; needs `attention_mask` None.
    """
    if getattr(model.config, "final_logit_softcapping", None) is not None:
        raise ValueError("response_logprobs: models with logit soft-capping are not supported")
    decoder: nn.Module = model.get_decoder()
    cache = None
    if head:
        assert attention_mask is None, "a shared head needs right-padded rows, without a mask"
        cache = DynamicCache(config=model.config)
        decoder(input_ids=input_ids[:1, :head], past_key_values=cache)  # (1, head) keys/values
        cache.batch_repeat_interleave(input_ids.shape[0])  # a view per row; gradients add up
        input_ids, response_mask = input_ids[:, head:], response_mask[:, head:]  # (B, T-head)
    hidden = decoder(input_ids=input_ids, attention_mask=attention_mask, past_key_values=cache)
    scored = response_mask[:, 1:]  # (B, T'-1): position t predicts token t+1
    states = hidden.last_hidden_state[:, :-1][scored]  # (N, H): response-predicting positions only
    targets = input_ids[:, 1:][scored]  # (N,)
    lm_head: nn.Module = model.get_output_embeddings()
    # checkpointed chunks keep only their inputs; the (chunk, V) logits are recomputed in backward
    score = _chunk_logprobs if not torch.is_grad_enabled() else _checkpointed_chunk_logprobs
    chunks = [
        score(lm_head, states[i : i + chunk_tokens], targets[i : i + chunk_tokens])  # (n,)
        for i in range(0, targets.numel(), chunk_tokens)
    ]
    flat = torch.cat(chunks) if chunks else states.new_zeros(0, dtype=torch.float32)  # (N,)
    shifted = torch.zeros(scored.shape, dtype=torch.float32, device=flat.device)  # (B, T-1)
    return F.pad(shifted.masked_scatter(scored, flat), (1 + head, 0))  # (B, T)


def _chunk_logprobs(head: nn.Module, states: Tensor, targets: Tensor) -> Tensor:
    logits: Tensor = head(states).float()  # (n, V): autocast dtype matmul, fp32 log-softmax
    target = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # (n,)
    return target - torch.logsumexp(logits, dim=-1)  # (n,)


def _checkpointed_chunk_logprobs(head: nn.Module, states: Tensor, targets: Tensor) -> Tensor:
    out: Tensor = checkpoint(
        _chunk_logprobs, head, states, targets, use_reentrant=False, preserve_rng_state=False
    )
    return out


def _reference_logprobs(
    ref_model: CausalLM | None, mb: MicroBatch, config: RLStepConfig, head: int
) -> Tensor:
    assert ref_model is not None  # rl_step checked it
    ref_model.train(False)  # eval mode; `eval()` is unannotated in transformers
    with torch.no_grad():
        return response_logprobs(
            ref_model, mb.input_ids, None, mb.response_mask,
            chunk_tokens=config.head_chunk_tokens, head=head,
        )  # fmt: skip


def _autocast(device: torch.device, precision: Precision) -> AbstractContextManager[None]:
    match precision:
        case "bf16":
            return torch.autocast(device.type, dtype=torch.bfloat16)
        case "fp32":
            return torch.autocast(device.type, enabled=False)
        case _:
            assert_never(precision)
