"""The policy sharded across a job's processes with FSDP2 (`torch.distributed.fsdp.fully_shard`).

Each decoder layer is its own FSDP unit (gathered for its forward and backward, resharded
after); the root unit is a `ResponseLogprobs` around the policy and holds the rest: the
embeddings, the final norm and the LM head (tied to the embeddings in most small models,
which is why they share a unit). Full fine-tuning and LoRA shard alike: frozen and trainable
parameters may share a unit, and only trainable ones get gradients and optimizer state, each
rank keeping its shard of them. Parameters stay fp32 (the optimizer's master weights) and
the step's forward runs under the same autocast as unsharded.
"""

from __future__ import annotations

import copy
from typing import cast

import torch
from torch import nn
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard
from torch.distributed.tensor import DTensor

from fulmen.trainers._distributed import Ranks
from fulmen.trainers._logprobs import CausalLM, ResponseLogprobs


def shard_policy(policy: CausalLM, *, ranks: Ranks) -> ResponseLogprobs:
    """A sharded copy of `policy` on `ranks.device`, for `rl_step`; `policy` itself is left
    as it was on rank 0 (it gates and saves the result, `gather_trained`), and becomes this
    rank's shard elsewhere (no second copy where nobody needs the whole model again)."""
    target = copy.deepcopy(policy) if ranks.main else policy
    mesh = init_device_mesh(ranks.device.type, (ranks.world_size,))
    scorer = ResponseLogprobs(target)
    decoder = cast(nn.Module, target.get_decoder())
    for layer in cast(nn.ModuleList, decoder.layers):
        fully_shard(layer, mesh=mesh)
    fully_shard(scorer, mesh=mesh)
    return scorer


def gather_trained(sharded: nn.Module, policy: CausalLM, *, ranks: Ranks) -> None:
    """Copy every trainable parameter of `sharded` (a sharded copy of `policy`, or a
    `ResponseLogprobs` around one) into rank 0's unsharded `policy`. A collective: one
    all-gather per parameter, in the same order on every rank."""
    if isinstance(sharded, ResponseLogprobs):
        sharded = sharded.policy
    target = dict(policy.named_parameters()) if ranks.main else {}
    with torch.no_grad():
        for name, param in sharded.named_parameters():
            if not param.requires_grad:
                continue
            full = param.full_tensor() if isinstance(param, DTensor) else param
            if ranks.main:
                target[name].copy_(full.to(target[name].device))
