"""Credit assignment: how an episode's rewards become one reward per LLM call.

An assigner sees the episode's LLM calls in order and its rewards, and returns one number per
call. The name it reports is recorded with the episode (`credit_assignment`), so a trainer
knows what its triplets' rewards mean.

Assigners see scored episodes only: those with at least one reward of the primary name. An
unscored episode's calls get no reward (None) without asking the assigner, so the zeros
below (`final` with no rollout-level reward, a step without a reward of its own) are the
absence of a reward in an episode that *was* scored, never a stand-in for a lost one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

from fulmen.schemas import Reward, Span


@dataclass(frozen=True)
class EpisodeRewards:
    """The rewards of one episode, split by what they score."""

    final: float
    """Sum of the rollout-level rewards of the primary name (those without a `span_id`); 0.0
    when the episode's primary rewards are all step-level."""
    by_span: dict[str, float]
    """Sum of the step-level rewards of the primary name, by the span they score."""
    by_source: dict[str, dict[str, float]]
    """Step-level rewards of the primary name by source (`programmatic`, `human`, `judge`)."""


class CreditAssigner(ABC):
    """Turns an episode's rewards into one reward per LLM call (same order as `calls`).
    Called only for scored episodes (at least one reward of the primary name); must be pure,
    so that a replayed episode gets the same credit."""

    name: str

    @abstractmethod
    def assign(self, calls: Sequence[Span], rewards: EpisodeRewards) -> list[float]: ...


class FinalReward(CreditAssigner):
    """Every call gets the episode's final reward (what Agent Lightning does)."""

    name = "final"

    def assign(self, calls: Sequence[Span], rewards: EpisodeRewards) -> list[float]:
        return [rewards.final] * len(calls)


class DiscountedReturn(CreditAssigner):
    """Each call gets the discounted sum of the rewards from its step on:
    G_t = r_t + gamma * G_{t+1}, where r_t is the step reward of call t and the episode's
    final reward counts as received at the last call."""

    def __init__(self, gamma: float = 0.99) -> None:
        if not 0.0 <= gamma <= 1.0:
            raise ValueError(f"gamma must be in [0, 1], got {gamma}")
        self.gamma = gamma
        self.name = f"discounted(gamma={gamma:g})"

    def assign(self, calls: Sequence[Span], rewards: EpisodeRewards) -> list[float]:
        returns = [0.0] * len(calls)
        running = 0.0
        for index in range(len(calls) - 1, -1, -1):
            step = rewards.by_span.get(calls[index].span_id, 0.0)
            if index == len(calls) - 1:
                step += rewards.final
            running = step + self.gamma * running
            returns[index] = running
        return returns


class PerCallReward(CreditAssigner):
    """Each call gets only the rewards attached to its own span, optionally from one source
    (e.g. `judge` for per-call judge rewards); calls without one get `default`."""

    def __init__(self, *, source: str | None = None, default: float = 0.0) -> None:
        self.source = source
        self.default = default
        self.name = "per_call" if source is None else f"per_call({source})"

    def assign(self, calls: Sequence[Span], rewards: EpisodeRewards) -> list[float]:
        scores = rewards.by_span if self.source is None else rewards.by_source.get(self.source, {})
        return [scores.get(call.span_id, self.default) for call in calls]


def split_rewards(rewards: Sequence[Reward], *, primary: str) -> EpisodeRewards:
    """Sum the rewards named `primary` by what they score."""
    final = 0.0
    by_span: dict[str, float] = {}
    by_source: dict[str, dict[str, float]] = {}
    for reward in rewards:
        if reward.name != primary:
            continue
        if reward.span_id is None:
            final += reward.value
            continue
        by_span[reward.span_id] = by_span.get(reward.span_id, 0.0) + reward.value
        source = by_source.setdefault(reward.source, {})
        source[reward.span_id] = source.get(reward.span_id, 0.0) + reward.value
    return EpisodeRewards(final=final, by_span=by_span, by_source=by_source)
