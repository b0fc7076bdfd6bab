"""RL on logged episodes: the window's LLM calls become policy-gradient samples with
GRPO-style group-relative advantages, stale or unusable calls are dropped, and `rl_step`
takes optimizer steps over shuffled batches of them.

The agents generated these calls with some earlier version (the behaviour policy); the
step corrects for that with token-level truncated importance weights against the logged
logprobs, and calls more than `max_staleness` versions behind the trained parent are not
used at all (async off-policy RL as in AReaL and verl's rollout correction)."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from peft import PeftModel

from fulmen.models._precision import Precision, uses_bf16
from fulmen.trainers._distributed import SINGLE, Ranks, rank_share
from fulmen.trainers._fsdp import gather_trained, shard_policy
from fulmen.trainers._logprobs import ResponseLogprobs
from fulmen.trainers._packed_policy import packed_policy
from fulmen.trainers._rl_loss import group_advantages, version_staleness
from fulmen.trainers._rl_step import RLStepConfig, StepStats, rl_step
from fulmen.trainers._samples import Sample
from fulmen.trainers._window import LoggedCall, Window


@dataclass(frozen=True, slots=True)
class RlSettings:
    learning_rate: float = 1e-4
    epochs: int = 1
    """Passes over the window. Each step's proximal policy is the current weights, so the
    PPO clip engages only within a step; more passes are repeated on-policy steps."""
    batch_size: int = 32
    """Samples per optimizer step."""
    max_staleness: int = 4
    """Drop calls whose behaviour version is more versions behind the parent than this."""
    tis_cap: float = 2.0
    clip_low: float = 0.2
    clip_high: float = 0.28
    kl_beta: float = 0.0
    max_tokens: int = 4096
    seed: int = 0
    precision: Precision = "auto"
    """Autocast of the step: `auto` is bf16 where it pays (CUDA, CPUs with AMX/AVX-512
    BF16), fp32 elsewhere."""


@dataclass(frozen=True, slots=True)
class RlData:
    """The samples a window yields, and why the rest were dropped."""

    samples: list[Sample]
    stale: int
    missing_logprobs: int
    zero_advantage: int
    unscored: int = 0
    """Calls of unscored episodes (in a window that includes them): no reward, no sample."""


def rl_samples(
    window: Window, *, parent: str, parents: Mapping[str, str | None], max_staleness: int
) -> RlData:
    """Samples of every usable call: logged token ids and logprobs present, behaviour
    version within `max_staleness` of `parent`, nonzero group-relative advantage (a group is
    a task's calls at one step, so each call is compared with the other attempts' calls at
    the same turn and a long episode does not outweigh a short one in the baseline; a call's
    reward is the credit the stream stage assigned it). Calls of
    unscored episodes are dropped: a missing reward is no evidence of a zero."""
    usable: list[tuple[LoggedCall, float]] = []
    stale, missing, unscored = 0, 0, 0
    for call in window.calls:
        distance = version_staleness(call.model_version, parent, parents)
        if call.reward is None:
            unscored += 1
        elif distance is None or distance > max_staleness:
            stale += 1
        elif not call.response_ids or len(call.logprobs) != len(call.response_ids):
            missing += 1
        else:
            usable.append((call, call.reward))
    groups = [f"{c.task_id}#{c.step}" for c, _ in usable]
    advantages = group_advantages([r for _, r in usable], groups)
    samples = [
        Sample(
            prompt_ids=c.prompt_ids,
            response_ids=c.response_ids,
            behaviour_logprobs=c.logprobs,
            advantage=a,
        )
        for (c, _), a in zip(usable, advantages, strict=True)
        if a != 0.0
    ]
    return RlData(
        samples, stale, missing, zero_advantage=len(usable) - len(samples), unscored=unscored
    )


def train_rl(
    model: PeftModel,
    data: RlData,
    *,
    settings: RlSettings,
    on_step: Callable[[int, int, StepStats], None] | None = None,
    ranks: Ranks = SINGLE,
) -> list[StepStats]:
    """Optimizer steps over `data` for `settings.epochs` passes, in place on the adapter.

    With several processes (`ranks.distributed`) every rank calls this with the same `data`:
    the steps' batches are the same on every rank (one seed), each rank steps on its share
    of each batch (`rank_share`) with the policy sharded by FSDP2 on its device, and the
    trained parameters are gathered back into rank 0's `model` at the end; the update is
    one process's over the same batches, up to floating-point summation order."""
    if ranks.distributed or next(model.parameters()).device.type != "cuda":
        return _train(model, data, settings=settings, on_step=on_step, ranks=ranks, packed=False)
    # one GPU: packed rows, flex attention, compiled layers (sharded steps stay padded: the
    # packed path has not been run under FSDP2)
    with packed_policy(model, compile_layers=True):
        return _train(model, data, settings=settings, on_step=on_step, ranks=ranks, packed=True)


def _train(
    model: PeftModel,
    data: RlData,
    *,
    settings: RlSettings,
    on_step: Callable[[int, int, StepStats], None] | None,
    ranks: Ranks,
    packed: bool,
) -> list[StepStats]:
    sharded = shard_policy(model, ranks=ranks) if ranks.distributed else None
    policy: PeftModel | ResponseLogprobs = model if sharded is None else sharded
    device = next(policy.parameters()).device
    bf16 = uses_bf16(device, settings.precision)
    config = RLStepConfig(
        max_tokens=settings.max_tokens,
        # A micro-batch costs kernel launches on a GPU (fewer, bigger ones pay) but little on
        # a CPU, where padding is the waste to avoid.
        micro_batch_overhead_tokens=8192 if device.type == "cuda" else 32,
        layout="packed" if packed else "padded",
        pack_bucket_tokens=1024 if packed else 1,
        clip_low=settings.clip_low,
        clip_high=settings.clip_high,
        tis_cap=settings.tis_cap,
        precision="bf16" if bf16 else "fp32",
    )
    trainable = [p for p in policy.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(  # fused: one kernel for all parameters, on an unsharded GPU
        trainable, lr=settings.learning_rate, weight_decay=0.0,
        fused=device.type == "cuda" and sharded is None,
    )  # fmt: skip
    order = random.Random(settings.seed)
    batches: list[list[Sample]] = []
    for _ in range(settings.epochs):
        shuffled = order.sample(data.samples, len(data.samples))
        batches += [
            shuffled[i : i + settings.batch_size]
            for i in range(0, len(shuffled), settings.batch_size)
        ]
    history: list[StepStats] = []
    for index, batch in enumerate(batches):
        stats = rl_step(policy, optimizer, rank_share(batch, ranks), config=config)
        history.append(stats)
        if on_step is not None:
            on_step(index + 1, len(batches), stats)
    if sharded is not None:
        gather_trained(sharded, model, ranks=ranks)
    return history
