"""The RL objective as pure functions: advantages, staleness, importance weights, the loss.

Async off-policy RL as in AReaL's decoupled PPO and verl's rollout correction: three
policies meet in one token's loss —

- the *behaviour* policy that served the call (the logged logprobs, possibly several
  versions old, computed by another engine in another precision),
- the *old* (proximal) policy: the trainer's weights when the step began,
- the *current* policy being optimised.

PPO's clip keeps current near old; a truncated importance weight old/behaviour (TIS)
corrects for having sampled from behaviour without letting a stale token's weight explode.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor


def group_advantages(
    rewards: Sequence[float], groups: Sequence[str], *, scale: bool = True, eps: float = 1e-6
) -> list[float]:
    """GRPO group-relative advantages, one per reward, in the input order.

    `groups[i]` names the group of `rewards[i]` (e.g. the task the episode attempted).
    Each advantage is the reward minus its group's mean, divided by `std + eps` when
    `scale` (the sample standard deviation, n - 1, as TRL and verl compute it). A group of
    one has no baseline and gets 0; a group whose rewards are all equal gets 0 everywhere.
    """
    if len(rewards) != len(groups):
        raise ValueError(f"{len(rewards)} rewards but {len(groups)} group labels")
    members: dict[str, list[float]] = defaultdict(list)
    for reward, group in zip(rewards, groups, strict=True):
        members[group].append(float(reward))
    baseline: dict[str, tuple[float, float]] = {}
    for group, values in members.items():
        n = len(values)
        mean = sum(values) / n
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
        baseline[group] = (mean, std)
    out: list[float] = []
    for reward, group in zip(rewards, groups, strict=True):
        mean, std = baseline[group]
        if len(members[group]) == 1:
            out.append(0.0)
        else:
            centred = float(reward) - mean
            out.append(centred / (std + eps) if scale else centred)
    return out


def version_staleness(
    behaviour: str, current: str, parents: Mapping[str, str | None]
) -> int | None:
    """How many versions `behaviour` lies behind `current`, following parents from `current`.

    `parents[v]` is the version `v` was trained from (None for a root). Returns 0 when the
    two are equal, n when `behaviour` is the n-th ancestor of `current`, and None when it
    is not an ancestor (another branch, an unknown version, or a cycle in `parents`).
    """
    if behaviour == current:
        return 0
    seen = {current}
    version, distance = current, 0
    while (parent := parents.get(version)) is not None:
        distance += 1
        if parent == behaviour:
            return distance
        if parent in seen:
            return None
        seen.add(parent)
        version = parent
    return None


def truncated_importance_weights(
    logprobs: Tensor, behaviour_logprobs: Tensor, *, cap: float
) -> Tensor:
    """Token-level TIS weights `min(exp(logprobs - behaviour_logprobs), cap)`, detached.

    Same shape as the inputs; a token whose ratio exceeds `cap` gets exactly `cap`.
    """
    return torch.exp(logprobs.detach() - behaviour_logprobs.detach()).clamp(max=cap)


@dataclass(frozen=True, slots=True)
class LossStats:
    """Diagnostics of one `policy_loss` call, as means over the masked tokens."""

    clip_fraction: float
    """Share of tokens where PPO's clipped branch was active (ratio outside the band in
    the direction the advantage pushes): their gradient is zero."""
    tis_mean: float
    """Mean truncated importance weight min(exp(old - behaviour), cap)."""
    tis_truncated_fraction: float
    """Share of tokens whose old/behaviour ratio exceeded the cap."""
    kl_mean: float
    """Mean k3 estimate of KL(current ‖ reference); 0 without a reference."""


def policy_loss(
    logprobs: Tensor,
    old_logprobs: Tensor,
    behaviour_logprobs: Tensor,
    advantages: Tensor,
    mask: Tensor,
    *,
    clip_low: float = 0.2,
    clip_high: float = 0.28,
    tis_cap: float = 2.0,
    ref_logprobs: Tensor | None = None,
    kl_beta: float = 0.0,
) -> tuple[Tensor, LossStats]:
    """Decoupled PPO/GRPO loss with truncated importance sampling, token-mean over `mask`.

    Per token, with r = exp(logprobs - old_logprobs) and A the advantage:

        w      = min(exp(old_logprobs - behaviour_logprobs), tis_cap)
        loss_t = -min(r·A, clip(r, 1 - clip_low, 1 + clip_high)·A) · w
                 + kl_beta · (exp(ref - logprobs) - (ref - logprobs) - 1)

    and the result is Σ_t mask·loss_t / Σ_t mask (0 for an empty mask). Only `logprobs`
    carries gradient; old, behaviour and reference logprobs are constants. A nonzero
    `kl_beta` without `ref_logprobs` is a ValueError.

    Shapes: `logprobs`, `old_logprobs`, `behaviour_logprobs`, `mask` and `ref_logprobs` are
    (batch, length) in any common layout; `advantages` is (batch,) — one per sequence — or
    (batch, length). Values at masked-out positions are ignored but must be finite.
    """
    if kl_beta != 0.0 and ref_logprobs is None:
        raise ValueError("policy_loss: kl_beta is set but no ref_logprobs were given")
    old = old_logprobs.detach()
    keep = mask.bool()  # (B, T)
    adv = advantages.unsqueeze(-1) if advantages.dim() == 1 else advantages  # (B, 1) | (B, T)
    ratio = torch.exp(logprobs - old)  # (B, T)
    surrogate = torch.minimum(ratio * adv, ratio.clamp(1 - clip_low, 1 + clip_high) * adv)
    tis = truncated_importance_weights(old, behaviour_logprobs, cap=tis_cap)  # (B, T), no grad
    per_token = -surrogate * tis
    kl = torch.zeros_like(per_token)
    if ref_logprobs is not None:
        log_ref_ratio = ref_logprobs.detach() - logprobs
        kl = torch.exp(log_ref_ratio) - log_ref_ratio - 1  # k3: unbiased, always ≥ 0
        per_token = per_token + kl_beta * kl
    count = keep.sum().clamp(min=1)
    loss = torch.where(keep, per_token, 0.0).sum() / count

    with torch.no_grad():  # one host sync for all four statistics
        clipped = ((ratio < 1 - clip_low) & (adv < 0)) | ((ratio > 1 + clip_high) & (adv > 0))
        raw_tis = torch.exp(old - behaviour_logprobs.detach())
        sums = torch.stack(
            [
                (keep & clipped).sum().double(),
                torch.where(keep, tis, 0.0).sum().double(),
                (keep & (raw_tis > tis_cap)).sum().double(),
                torch.where(keep, kl.detach(), 0.0).sum().double(),
            ]
        )
        clip_fraction, tis_mean, truncated, kl_mean = (sums / count.double()).tolist()
    return loss, LossStats(clip_fraction, tis_mean, truncated, kl_mean)
