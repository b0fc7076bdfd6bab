"""The evaluation gate: a candidate ships only if, on the same held-out tasks with greedy
decoding, it is not worse than its parent by more than the tolerance allows."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from peft import PeftModel
from rich.progress import Progress
from transformers import PreTrainedTokenizerBase

from fulmen.tasks._task import AgentTask, TaskCase
from fulmen.trainers._episodes import run_episodes


@dataclass(frozen=True, slots=True)
class GateSettings:
    heldout_tasks: int = 100
    min_gain: float = 0.0
    """Required held-out reward gain over the parent; negative tolerates a small loss."""
    max_new_tokens: int = 48
    batch_size: int = 50


@dataclass(frozen=True, slots=True)
class GateDecision:
    parent_reward: float
    candidate_reward: float
    passed: bool
    reason: str


def heldout_reward(
    model: PeftModel,
    tokenizer: PreTrainedTokenizerBase,
    task: AgentTask,
    cases: Sequence[TaskCase],
    *,
    settings: GateSettings,
    on_batch: Callable[[int], None] | None = None,
) -> float:
    """Mean reward of greedy episodes of `cases` (one reply each for a single-turn task)."""
    model.eval()
    episodes = run_episodes(
        model, tokenizer, task, cases, max_new_tokens=settings.max_new_tokens,
        batch_size=settings.batch_size, on_done=on_batch,
    )  # fmt: skip
    return sum(e.reward for e in episodes) / len(episodes)


def evaluate_with_progress(
    progress: Progress,
    label: str,
    model: PeftModel,
    tokenizer: PreTrainedTokenizerBase,
    task: AgentTask,
    cases: Sequence[TaskCase],
    settings: GateSettings,
) -> float:
    bar = progress.add_task(label, total=len(cases))
    reward = heldout_reward(
        model,
        tokenizer,
        task,
        cases,
        settings=settings,
        on_batch=lambda n: progress.advance(bar, n),
    )
    progress.update(bar, description=f"{label}: {reward:.3f}")
    return reward


def heldout_fingerprint(task: str, settings: GateSettings) -> float:
    """Which held-out evaluation a score comes from: the task, how many of its held-out
    cases, how many tokens greedy decoding may write. A float, as version metrics are."""
    return float(zlib.crc32(f"{task}|{settings.heldout_tasks}|{settings.max_new_tokens}".encode()))


def known_score(parent_metrics: Mapping[str, float], fingerprint: float) -> float | None:
    """The parent's own held-out reward, measured when it was gated on the same evaluation
    (greedy decoding of the same cases gives the same score), else None: evaluate it."""
    if parent_metrics.get("heldout_fingerprint") != fingerprint:
        return None
    return parent_metrics.get("heldout_reward")


def decide(parent_reward: float, candidate_reward: float, *, min_gain: float) -> GateDecision:
    gain = candidate_reward - parent_reward
    passed = gain >= min_gain
    verdict = "passes" if passed else "fails"
    return GateDecision(
        parent_reward=parent_reward,
        candidate_reward=candidate_reward,
        passed=passed,
        reason=(
            f"held-out reward {candidate_reward:.3f} vs parent {parent_reward:.3f} "
            f"(gain {gain:+.3f}, required {min_gain:+.3f}): {verdict}"
        ),
    )
