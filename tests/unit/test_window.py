"""Trainer windows with unscored episodes in them (an algorithm that asked for them): no
reader of rewards takes a missing reward for 0."""

from __future__ import annotations

import random
from pathlib import Path

from fulmen.store import Snapshot
from fulmen.trainers import LoggedCall, Window, best_episodes, rl_samples
from fulmen.trainers._apo import low_reward_examples


def _call(rollout: str, task: str, reward: float | None, step: int = 0) -> LoggedCall:
    return LoggedCall(
        rollout_id=rollout, attempt=1, step=step, task_id=task, model_version="v1",
        prompt_ids=(1, 2), response_ids=(3,), logprobs=(-0.5,), reward=reward,
        prompt=f"{rollout} asks", response=f"{rollout} answers",
    )  # fmt: skip


def _window(*calls: LoggedCall) -> Window:
    return Window("w", Snapshot(Path("-"), "hash", len(calls)), calls)


WINDOW = _window(
    _call("a", "t1", 1.0),
    _call("a", "t1", 1.0, step=1),
    _call("b", "t1", 0.0),
    _call("c", "t1", None),  # unscored
    _call("d", "t2", None),  # unscored, alone in its task
    _call("e", "t2", -0.5),
)


def test_scored_episodes_leave_unscored_ones_out() -> None:
    scored = WINDOW.scored_episodes()
    assert [(e.key, e.reward, len(e.calls)) for e in scored] == [
        (("a", 1), 1.0, 2),
        (("b", 1), 0.0, 1),
        (("e", 1), -0.5, 1),
    ]
    assert len(WINDOW.by_episode()) == 5  # by_episode still shows everything


def test_rejection_sampling_never_picks_an_unscored_episode() -> None:
    best = best_episodes(WINDOW, min_reward=-1.0)
    assert [[c.rollout_id for c in calls] for calls in best] == [["a", "a"], ["e"]]
    only_unscored = _window(_call("x", "t1", None))
    assert best_episodes(only_unscored, min_reward=-10.0) == []


def test_rl_drops_unscored_calls_instead_of_reading_them_as_zero() -> None:
    data = rl_samples(WINDOW, parent="v1", parents={"v1": None}, max_staleness=0)
    assert data.unscored == 2
    # t1 at step 0: rewards 1, 0 (not 1, 0, 0); a's step-1 call and t2's one scored call
    # have no other attempt at their step to compare with
    assert len(data.samples) == 2
    assert data.zero_advantage == 2
    assert sorted(round(s.advantage, 3) for s in data.samples)[0] < 0  # b below its group


def test_rl_compares_each_call_with_the_other_attempts_at_its_step() -> None:
    # two attempts of a 2-call task, credited per step: both lookups right, one answer right
    window = _window(
        _call("a", "t", 1.0, step=0), _call("a", "t", 1.0, step=1),
        _call("b", "t", 1.0, step=0), _call("b", "t", 0.0, step=1),
        _call("c", "t", 1.0, step=0),  # an episode cut short after its first call
    )  # fmt: skip
    data = rl_samples(window, parent="v1", parents={"v1": None}, max_staleness=0)
    # step 0 is all 1s: no gradient for the lookups; step 1 pushes a's answer up, b's down
    assert data.zero_advantage == 3
    assert sorted(s.advantage > 0 for s in data.samples) == [False, True]


def test_apo_critiques_only_scored_episodes() -> None:
    examples = low_reward_examples(WINDOW, 5, rng=random.Random(0), max_chars=100)
    assert sorted(e.reward for e in examples) == [-0.5, 0.0, 1.0]
