"""The release rule: compare a canary with the version it would replace, from production
rewards, and say promote, hold or roll back — valid however often it is looked at.

Each arm's mean reward gets an asymptotic confidence sequence (Waudby-Smith, Arnold, Wu,
Howard, Ramdas 2021, "Time-uniform central limit theory and asymptotic confidence
sequences", the Gaussian-mixture boundary): with probability about 1 - alpha_arm the
interval

    mean_n ± sigma_n * sqrt(2 (n rho² + 1) / (n² rho²) * log(sqrt(n rho² + 1) / alpha_arm))

covers the true mean at every n at once, not only at a fixed n. Each arm runs at alpha / 2,
so the difference interval [L_c - U_p, U_c - L_p] holds at level alpha at every look (a
union bound). `rho` is tuned so the interval is tightest at the planned number of episodes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, assert_never

from pydantic import BaseModel, ConfigDict, Field, model_validator

from fulmen.schemas import ArmEvidence, ReleaseAction

Inconclusive = Literal["hold", "rollback", "promote"]
VerdictCode = Literal[
    "waiting",
    "undecided",
    "worse",
    "not_worse",
    "inconclusive",
    "error_rate",
    "latency",
    "tokens",
]
"""Why a verdict is what it is: too few episodes yet, no verdict yet, the canary is surely
worse, surely not worse, `max_episodes` reached without a verdict, or a guardrail."""


class ReleaseRule(BaseModel):
    """The rule's parameters (`FULMEN_RELEASE__*`, `ReleaseSettings`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    alpha: float = Field(default=0.05, gt=0.0, lt=1.0)
    """The probability, over the canary's whole life, that an interval misses its mean: a
    canary as good as its parent is rolled back by the reward rule at most this often."""
    min_episodes: int = Field(default=100, ge=2)
    """Scored episodes each arm needs before any verdict (the intervals are asymptotic)."""
    max_episodes: int = Field(default=2000, ge=2)
    """Scored canary episodes after which an undecided canary gets `on_inconclusive`."""
    planned_episodes: int = Field(default=500, ge=1)
    """The canary episodes where the intervals are tuned to be tightest (rho)."""
    margin: float = Field(default=0.0, ge=0.0)
    """Promote once the canary is surely not worse than its parent by more than this."""
    on_inconclusive: Inconclusive = "rollback"
    variance_floor: float = Field(default=0.01, gt=0.0)
    """The least reward variance an arm is given: an arm whose rewards are all equal still
    gets an interval of some width."""
    max_error_rate_increase: float = Field(default=0.05, ge=0.0, le=1.0)
    """Roll back when the canary's failed/timed-out share surely exceeds the parent's by
    more than this (the same kind of interval, on the error indicator)."""
    max_latency_ratio: float = Field(default=1.5, gt=0.0)
    """Roll back when the canary's mean episode duration exceeds the parent's this many
    times."""
    max_tokens_ratio: float = Field(default=1.5, gt=0.0)
    """Roll back when the canary's mean tokens per episode exceed the parent's this many
    times."""
    min_latency_increase_s: float = Field(default=0.5, ge=0.0)
    """The latency guardrail trips only when the canary is also this many seconds slower:
    a ratio of two short means (an agent answering in 30 ms) is mostly noise."""
    min_tokens_increase: float = Field(default=32.0, ge=0.0)
    """The tokens guardrail trips only when the canary also spends this many more tokens
    per episode."""

    @model_validator(mode="after")
    def _ordered(self) -> ReleaseRule:
        if self.max_episodes < self.min_episodes:
            raise ValueError(
                f"max_episodes ({self.max_episodes}) must be at least min_episodes "
                f"({self.min_episodes})"
            )
        return self

    def describe(self) -> str:
        """The rule as one line: what a decision records as its `rule`."""
        return (
            f"asymptotic-cs alpha={self.alpha:g} min={self.min_episodes} "
            f"max={self.max_episodes} planned={self.planned_episodes} margin={self.margin:g} "
            f"inconclusive={self.on_inconclusive} var_floor={self.variance_floor:g}; "
            f"guardrails error+{self.max_error_rate_increase:g} "
            f"latency x{self.max_latency_ratio:g}+{self.min_latency_increase_s:g}s "
            f"tokens x{self.max_tokens_ratio:g}+{self.min_tokens_increase:g}"
        )


@dataclass(frozen=True)
class ArmStats:
    """What the store says of one arm: `finished` episodes, of which `scored` had a reward
    (their sum and sum of squares), `errors` failed or timed out, and mean duration and
    tokens per finished episode."""

    version_id: str
    finished: int = 0
    scored: int = 0
    reward_sum: float = 0.0
    reward_sq_sum: float = 0.0
    errors: int = 0
    latency_mean_s: float = 0.0
    tokens_mean: float = 0.0


@dataclass(frozen=True)
class Interval:
    lower: float
    upper: float


@dataclass(frozen=True)
class Verdict:
    """What the rule says: `action`, why (`code`, and `reason` in words), and the evidence
    of each arm (the canary first)."""

    action: ReleaseAction
    code: VerdictCode
    reason: str
    arms: tuple[ArmEvidence, ArmEvidence]


def tuned_rho(alpha: float, planned: int) -> float:
    """The mixture parameter that makes the boundary tightest at `planned` observations
    (Waudby-Smith et al. 2021, after Howard et al. 2021)."""
    log_term = -2.0 * math.log(alpha)
    return math.sqrt((log_term + math.log(log_term + 1.0)) / planned)


def half_width(n: int, variance: float, alpha: float, rho: float) -> float:
    """The asymptotic confidence sequence's half-width for a mean of `n` observations of
    `variance`, at level `alpha` (two-sided); infinite for no observation."""
    if n <= 0:
        return math.inf
    nr2 = n * rho * rho
    return math.sqrt(variance) * math.sqrt(
        2.0 * (nr2 + 1.0) / (n * n * rho * rho) * math.log(math.sqrt(nr2 + 1.0) / alpha)
    )


def mean_interval(
    n: int, total: float, sq_total: float, *, alpha: float, rho: float, floor: float
) -> tuple[float, Interval]:
    """The mean of `n` observations (their sum and sum of squares) and its interval, with
    the sample variance raised to `floor`."""
    if n <= 0:
        return 0.0, Interval(-math.inf, math.inf)
    mean = total / n
    variance = max((sq_total - n * mean * mean) / max(n - 1, 1), 0.0)
    width = half_width(n, max(variance, floor), alpha, rho)
    return mean, Interval(mean - width, mean + width)


def difference(canary: Interval, parent: Interval) -> Interval:
    """The interval of canary minus parent from the two arms' intervals."""
    return Interval(canary.lower - parent.upper, canary.upper - parent.lower)


def decide(canary: ArmStats, parent: ArmStats, rule: ReleaseRule) -> Verdict:
    """The rule's verdict on `canary` against `parent` now.

    Until each arm has `rule.min_episodes` scored episodes: hold. Then, in order: a
    guardrail that trips rolls back; the reward difference's upper bound below 0 rolls back
    (canary surely worse); its lower bound above -margin promotes (surely not worse by more
    than the margin); otherwise hold, or `on_inconclusive` once the canary has
    `max_episodes`.
    """
    arm_alpha = rule.alpha / 2.0
    rho = tuned_rho(arm_alpha, rule.planned_episodes)
    intervals = [
        mean_interval(
            arm.scored,
            arm.reward_sum,
            arm.reward_sq_sum,
            alpha=arm_alpha,
            rho=rho,
            floor=rule.variance_floor,
        )
        for arm in (canary, parent)
    ]
    (c_mean, c_int), (p_mean, p_int) = intervals
    arms = (_evidence(canary, c_mean, c_int), _evidence(parent, p_mean, p_int))
    if min(canary.scored, parent.scored) < rule.min_episodes:
        return Verdict(
            "hold", "waiting", f"waiting for {rule.min_episodes} scored episodes on each arm", arms
        )
    tripped = _guardrail(canary, parent, rule, arm_alpha, rho)
    if tripped is not None:
        code, reason = tripped
        return Verdict("rollback", code, reason, arms)
    diff = difference(c_int, p_int)
    if diff.upper < 0.0:
        return Verdict(
            "rollback",
            "worse",
            f"canary reward surely lower than its parent's: "
            f"difference in [{diff.lower:.4f}, {diff.upper:.4f}]",
            arms,
        )
    if diff.lower > -rule.margin:
        return Verdict(
            "promote",
            "not_worse",
            f"canary reward surely not lower than its "
            f"parent's by more than {rule.margin:g}: difference in "
            f"[{diff.lower:.4f}, {diff.upper:.4f}]",
            arms,
        )
    if canary.scored >= rule.max_episodes:
        return Verdict(
            rule.on_inconclusive,
            "inconclusive",
            f"no verdict after {rule.max_episodes} canary episodes",
            arms,
        )
    return Verdict(
        "hold", "undecided", "the reward difference's interval contains both 0 and -margin", arms
    )


def _guardrail(
    canary: ArmStats, parent: ArmStats, rule: ReleaseRule, arm_alpha: float, rho: float
) -> tuple[VerdictCode, str] | None:
    """The first guardrail the canary trips, with its reason; None when none does."""
    rates = [
        mean_interval(
            arm.finished,
            arm.errors,
            arm.errors,  # an indicator's square is itself
            alpha=arm_alpha,
            rho=rho,
            floor=rule.variance_floor,
        )
        for arm in (canary, parent)
    ]
    (c_rate, c_int), (p_rate, p_int) = rates
    errors = difference(c_int, p_int)
    if errors.lower > rule.max_error_rate_increase:
        return "error_rate", (
            f"canary error rate {c_rate:.3f} surely above its parent's {p_rate:.3f} by more "
            f"than {rule.max_error_rate_increase:g} (difference at least {errors.lower:.3f})"
        )
    ratios: tuple[tuple[VerdictCode, float, float, float, float], ...] = (
        ("latency", canary.latency_mean_s, parent.latency_mean_s, rule.max_latency_ratio,
         rule.min_latency_increase_s),
        ("tokens", canary.tokens_mean, parent.tokens_mean, rule.max_tokens_ratio,
         rule.min_tokens_increase),
    )  # fmt: skip
    for code, mine, theirs, limit, least in ratios:
        if theirs > 0.0 and mine > limit * theirs and mine - theirs > least:
            return code, (
                f"canary mean {_MEASURES[code]} {mine:.4g} above {limit:g}x its parent's "
                f"{theirs:.4g}"
            )
    return None


_MEASURES: dict[VerdictCode, str] = {"latency": "episode duration (s)", "tokens": "tokens"}


def _evidence(arm: ArmStats, mean: float, interval: Interval) -> ArmEvidence:
    return ArmEvidence(
        version_id=arm.version_id,
        episodes=arm.scored,
        mean_reward=mean,
        reward_lower=interval.lower,
        reward_upper=interval.upper,
        error_rate=arm.errors / arm.finished if arm.finished else 0.0,
        latency_mean_s=arm.latency_mean_s,
        tokens_mean=arm.tokens_mean,
    )


def traffic_share_after(action: ReleaseAction, canary_share: float) -> float:
    """The canary's share once `action` is applied."""
    match action:
        case "promote":
            return 1.0
        case "rollback":
            return 0.0
        case "hold":
            return canary_share
        case _:
            assert_never(action)
