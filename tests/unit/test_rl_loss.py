"""The RL objective against values worked out by hand (the arithmetic is in each test)."""

from __future__ import annotations

import math

import pytest
import torch

from fulmen.trainers._rl_loss import (
    group_advantages,
    policy_loss,
    truncated_importance_weights,
    version_staleness,
)
from fulmen.trainers._samples import Sample


def test_group_advantages_two_groups_and_a_singleton() -> None:
    # group a: rewards 1, 0, 2 → mean 1, sample std sqrt((0 + 1 + 1) / 2) = 1 → 0, -1, +1
    # group b: rewards 3, 5    → mean 4, sample std sqrt((1 + 1) / 1) = √2  → -1/√2, +1/√2
    # group c: one reward      → no baseline → 0
    rewards = [1.0, 3.0, 0.0, 7.0, 5.0, 2.0]
    groups = ["a", "b", "a", "c", "b", "a"]
    got = group_advantages(rewards, groups, eps=0.0)
    want = [0.0, -1 / math.sqrt(2), -1.0, 0.0, 1 / math.sqrt(2), 1.0]
    assert got == pytest.approx(want, abs=1e-12)


def test_group_advantages_unscaled_and_degenerate() -> None:
    # unscaled: just reward - group mean; b: mean 4 → -1, +1
    assert group_advantages([3.0, 5.0], ["b", "b"], scale=False) == [-1.0, 1.0]
    # equal rewards: 0 / (0 + eps) = 0, never a division by zero
    assert group_advantages([1.0, 1.0, 1.0], ["g"] * 3) == [0.0, 0.0, 0.0]
    assert group_advantages([], []) == []
    with pytest.raises(ValueError, match="group labels"):
        group_advantages([1.0], ["a", "b"])


def test_version_staleness() -> None:
    # v1 ← v2 ← v3 (current); x is a sibling branch off v1
    parents: dict[str, str | None] = {"v1": None, "v2": "v1", "v3": "v2", "x": "v1"}
    assert version_staleness("v3", "v3", parents) == 0
    assert version_staleness("v2", "v3", parents) == 1
    assert version_staleness("v1", "v3", parents) == 2
    assert version_staleness("x", "v3", parents) is None  # another branch
    assert version_staleness("v0", "v3", parents) is None  # unknown
    assert version_staleness("v1", "nope", parents) is None  # unknown current
    assert version_staleness("v3", "v1", parents) is None  # a descendant is not behind


def test_version_staleness_survives_a_cycle() -> None:
    parents: dict[str, str | None] = {"a": "b", "b": "c", "c": "a"}
    assert version_staleness("c", "a", parents) == 2
    assert version_staleness("z", "a", parents) is None  # terminates instead of looping


def test_truncated_importance_weights() -> None:
    # exp(-1 - -1) = 1; exp(-0.5 - -1.5) = e ≈ 2.718 > cap → exactly 2; exp(-2 - -1) = e⁻¹
    logprobs = torch.tensor([-1.0, -0.5, -2.0], requires_grad=True)
    behaviour = torch.tensor([-1.0, -1.5, -1.0])
    w = truncated_importance_weights(logprobs, behaviour, cap=2.0)
    assert w[1].item() == 2.0
    assert w.tolist() == pytest.approx([1.0, 2.0, math.exp(-1.0)])
    assert not w.requires_grad


def _two_by_three() -> dict[str, torch.Tensor]:
    # ratios r = exp(lp - old) chosen by hand; TIS weights w = min(exp(old - behaviour), 2)
    old = torch.tensor([[-1.0, -1.0, -1.0], [-2.0, -2.0, -2.0]])
    r = torch.tensor([[1.5, 0.9, 1.0], [0.7, 1.1, 2.0]])
    w = torch.tensor([[1.0, math.e, 1.0], [0.5, 1.0, 1.0]])  # e is truncated to 2
    return {
        "logprobs": (old + r.log()).requires_grad_(),
        "old_logprobs": old,
        "behaviour_logprobs": old - w.log(),
        "advantages": torch.tensor([1.0, -2.0]),
        "mask": torch.tensor([[True, True, False], [True, True, True]]),
    }


def test_policy_loss_value_gradient_and_stats() -> None:
    x = _two_by_three()
    loss, stats = policy_loss(**x, clip_low=0.2, clip_high=0.28, tis_cap=2.0)
    # band [0.8, 1.28]; per token -min(r·A, clip(r)·A) · w:
    #   row 0, A=+1: r=1.5 → min(1.5, 1.28) = 1.28 (clipped)  → -1.28 · 1 = -1.28
    #                r=0.9 → min(0.9, 0.9)  = 0.9             → -0.9  · 2 = -1.8
    #                (third token masked out)
    #   row 1, A=-2: r=0.7 → min(-1.4, -1.6) = -1.6 (clipped) → 1.6 · 0.5 = 0.8
    #                r=1.1 → min(-2.2, -2.2) = -2.2           → 2.2 · 1   = 2.2
    #                r=2.0 → min(-4.0, -2.56) = -4.0          → 4.0 · 1   = 4.0
    # mean over the 5 unmasked tokens: (-1.28 - 1.8 + 0.8 + 2.2 + 4.0) / 5 = 3.92 / 5
    assert loss.item() == pytest.approx(0.784, abs=1e-6)
    loss.backward()
    # d/dlp of -(r·A)·w / 5 = -r·A·w / 5 where the unclipped branch is active, else 0:
    #   row 0: 0 (clipped), -0.9·1·2/5 = -0.36, 0 (masked)
    #   row 1: 0 (clipped), 1.1·2·1/5 = 0.44, 2.0·2·1/5 = 0.8
    grad = x["logprobs"].grad
    assert grad is not None
    assert grad.tolist() == [
        pytest.approx([0.0, -0.36, 0.0], abs=1e-6),
        pytest.approx([0.0, 0.44, 0.8], abs=1e-6),
    ]
    # clipped 2/5; TIS mean (1 + 2 + 0.5 + 1 + 1) / 5 = 1.1; truncated 1/5; no KL
    assert stats.clip_fraction == pytest.approx(0.4)
    assert stats.tis_mean == pytest.approx(1.1)
    assert stats.tis_truncated_fraction == pytest.approx(0.2)
    assert stats.kl_mean == 0.0


def test_policy_loss_per_token_advantages_match_per_sequence() -> None:
    x = _two_by_three()
    per_sequence, _ = policy_loss(**x)
    x["advantages"] = x["advantages"].unsqueeze(-1).expand(2, 3)
    per_token, _ = policy_loss(**x)
    assert per_token.item() == pytest.approx(per_sequence.item())


def test_policy_loss_k3_kl_term() -> None:
    # A = 0 removes the surrogate; d = ref - lp = (-0.5, +1.0)
    # k3 = exp(d) - d - 1 = (e^-0.5 - 0.5, e - 2) = (0.1065307, 0.7182818); mean 0.4124062
    lp = torch.tensor([[-1.0, -2.0]], requires_grad=True)
    ref = torch.tensor([[-1.5, -1.0]])
    loss, stats = policy_loss(
        lp, lp.detach(), lp.detach(), torch.zeros(1), torch.ones(1, 2, dtype=torch.bool),
        ref_logprobs=ref, kl_beta=0.1,
    )  # fmt: skip
    k3 = [math.exp(-0.5) - 0.5, math.e - 2.0]
    assert loss.item() == pytest.approx(0.1 * sum(k3) / 2, abs=1e-7)
    assert stats.kl_mean == pytest.approx(sum(k3) / 2, abs=1e-7)
    loss.backward()
    # d k3 / d lp = 1 - exp(d) → (1 - e^-0.5, 1 - e), times beta / tokens = 0.1 / 2
    assert lp.grad is not None
    assert lp.grad.tolist()[0] == pytest.approx(
        [0.05 * (1 - math.exp(-0.5)), 0.05 * (1 - math.e)], abs=1e-7
    )


def test_policy_loss_rejects_kl_without_reference_and_handles_empty_mask() -> None:
    x = _two_by_three()
    with pytest.raises(ValueError, match="ref_logprobs"):
        policy_loss(**x, kl_beta=0.1)
    x["mask"] = torch.zeros(2, 3, dtype=torch.bool)
    loss, stats = policy_loss(**x)
    assert loss.item() == 0.0
    assert stats.clip_fraction == 0.0


def test_sample_validates_lengths() -> None:
    Sample(prompt_ids=(1, 2), response_ids=(3,), behaviour_logprobs=(-0.1,), advantage=1.0)
    with pytest.raises(ValueError, match="1 response tokens but 2 behaviour logprobs"):
        Sample(prompt_ids=(1,), response_ids=(3,), behaviour_logprobs=(-0.1, -0.2), advantage=0.0)
    with pytest.raises(ValueError, match="prompt_ids is empty"):
        Sample(prompt_ids=(), response_ids=(3,), behaviour_logprobs=(-0.1,), advantage=0.0)
    with pytest.raises(ValueError, match="response_ids is empty"):
        Sample(prompt_ids=(1,), response_ids=(), behaviour_logprobs=(), advantage=0.0)
    with pytest.raises(ValueError, match="finite"):
        Sample(prompt_ids=(1,), response_ids=(3,), behaviour_logprobs=(0.5,), advantage=0.0)
