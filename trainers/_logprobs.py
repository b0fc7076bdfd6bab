"""Log-probabilities of response tokens, the quantity every policy-gradient loss needs,
without full-vocab logits for prompt positions; and the same as one module call
(`ResponseLogprobs`), the unit that FSDP2 shards and hooks (`fulmen.trainers._fsdp`)."""

from __future__ import annotations

from typing import TypeAlias

import torch
import torch.nn.functional as F
from peft import PeftModel
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint
from transformers import DynamicCache, PreTrainedModel

CausalLM: TypeAlias = PreTrainedModel | PeftModel
"""A transformers causal LM, or a PEFT (e.g. LoRA) wrapper of one: gradients reach whatever
parameters require them."""


def response_logprobs(
    model: CausalLM,
    input_ids: Tensor,
    attention_mask: Tensor | None,
    response_mask: Tensor,
    *,
    chunk_tokens: int = 1024,
    head: int = 0,
    position_ids: Tensor | None = None,
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
    `position_ids` (B, T) restarting at 0 mark packed rows (`fulmen.trainers._rl_pack`):
    several samples end to end, attention kept within each (transformers reads the restarts
    as documents); needs `attention_mask` None and `head` 0.
    """
    if getattr(model.config, "final_logit_softcapping", None) is not None:
        raise ValueError("response_logprobs: models with logit soft-capping are not supported")
    decoder: nn.Module = model.get_decoder()
    cache = None
    if head:
        assert position_ids is None, "a shared head is for padded rows, not packed ones"
        assert attention_mask is None, "a shared head needs right-padded rows, without a mask"
        cache = DynamicCache(config=model.config)
        decoder(input_ids=input_ids[:1, :head], past_key_values=cache)  # (1, head) keys/values
        cache.batch_repeat_interleave(input_ids.shape[0])  # a view per row; gradients add up
        input_ids, response_mask = input_ids[:, head:], response_mask[:, head:]  # (B, T-head)
    hidden = decoder(  # no cache of its own: it would hide packed rows from transformers' masks
        input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
        past_key_values=cache, use_cache=cache is not None,
    )  # fmt: skip
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


class ResponseLogprobs(nn.Module):
    """`response_logprobs` of `policy` as one module call.

    FSDP2 gathers a sharded module's parameters in its forward hook; the RL step reaches the
    decoder and the LM head directly, never through the causal LM's own forward, so the
    sharded root is this module (`fully_shard`): its hook gathers the embeddings, the final
    norm and the head, and each decoder layer's own hook gathers that layer.
    """

    def __init__(self, policy: CausalLM) -> None:
        super().__init__()
        self.policy = policy

    def forward(
        self,
        input_ids: Tensor,
        response_mask: Tensor,
        *,
        chunk_tokens: int,
        head: int = 0,
        position_ids: Tensor | None = None,
    ) -> Tensor:
        return response_logprobs(
            self.policy, input_ids, None, response_mask, chunk_tokens=chunk_tokens, head=head,
            position_ids=position_ids,
        )  # fmt: skip
