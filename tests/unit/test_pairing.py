"""The pairing rules: which completions DPO prefers to which, and what KTO is told is
desirable, from a window's attempts and the feedback on them."""

from __future__ import annotations

from pathlib import Path

import pytest

from fulmen.store import Snapshot
from fulmen.trainers import (
    JudgedCompletion,
    LoggedCall,
    LoggedFeedback,
    PairingLoadError,
    PairingRule,
    PreferenceInput,
    PreferencePair,
    RewardPairs,
    ThumbPairs,
    Window,
    decision_point,
    load_pairing_rule,
)
from fulmen.trainers._preference_trl import kto_dataset

PROMPT = (1, 2, 3)


def _call(
    rollout: str,
    answer: tuple[int, ...],
    reward: float | None,
    *,
    task: str = "t1",
    step: int = 0,
    prompt: tuple[int, ...] = PROMPT,
    span: str = "",
) -> LoggedCall:
    return LoggedCall(
        rollout_id=rollout, attempt=1, step=step, task_id=task, model_version="", prompt_ids=prompt,
        response_ids=answer, logprobs=(-0.1,) * len(answer), reward=reward, prompt="[]",
        response="", span_id=span or f"{rollout}-{step}",
    )  # fmt: skip


def _thumb(
    rollout: str, up: bool, *, correction: str | None = None, span: str | None = None
) -> LoggedFeedback:
    return LoggedFeedback(rollout, 1, up, "human", span, correction, None)


def _input(calls: list[LoggedCall], feedback: tuple[LoggedFeedback, ...] = ()) -> PreferenceInput:
    window = Window("w", Snapshot(Path("-"), "w", len(calls)), tuple(calls), feedback)
    return PreferenceInput(window, lambda text: (*(ord(c) for c in text), 0))


def test_attempts_that_scored_differently_make_pairs_the_better_one_chosen() -> None:
    data = _input([
        _call("a", (7,), 1.0), _call("b", (8,), 0.0), _call("c", (9,), 0.2),
        _call("d", (7,), 1.0),  # the same answer as `a`: the same pairs
        _call("e", (5,), 0.0, task="t2"),  # alone in its task
    ])  # fmt: skip

    pairs = RewardPairs(min_gap=0.5).pairs(data)

    assert pairs == [
        PreferencePair("t1", PROMPT, (7,), (8,)),
        PreferencePair("t1", PROMPT, (7,), (9,)),
    ]
    assert RewardPairs(min_gap=0.5).name == "rewards(min_gap=0.5, max_per_task=16)"


@pytest.mark.parametrize("cap", [1, 3, 7, 40])
def test_a_task_keeps_at_most_its_cap_of_pairs_the_widest_gaps_first(cap: int) -> None:
    rewards = [1.0, 0.9, 0.8, 0.75, 0.3, 0.2, 0.1, 0.0]  # 4 x 4 pairs cross the gap ...
    calls = [_call(f"r{i}", (10 + i,), reward) for i, reward in enumerate(rewards)]
    calls += [_call(f"s{i}", (30 + i,), reward, task="t2") for i, reward in enumerate(rewards)]
    gap = {c.response_ids: c.reward or 0.0 for c in calls}

    pairs = RewardPairs(max_per_task=cap).pairs(_input(calls))

    every = RewardPairs(max_per_task=100).pairs(_input(calls))
    assert len(every) == 2 * 15  # ... but 0.75 against 0.3
    for task in ("t1", "t2"):
        kept = [p for p in pairs if p.task_id == task]
        dropped = [p for p in every if p.task_id == task and p not in kept]
        assert len(kept) == min(cap, 15)
        widths = [gap[p.chosen_ids] - gap[p.rejected_ids] for p in kept]
        assert widths == sorted(widths, reverse=True)
        assert all(gap[p.chosen_ids] - gap[p.rejected_ids] <= widths[-1] for p in dropped)


def test_unscored_attempts_make_no_reward_pairs() -> None:
    data = _input([_call("a", (7,), 1.0), _call("b", (8,), None)])
    assert RewardPairs().pairs(data) == []


def test_multi_step_attempts_pair_where_they_parted() -> None:
    better = [_call("a", (4,), 1.0), _call("a", (6,), 1.0, step=1, prompt=(1, 2, 3, 4, 5))]
    worse = [_call("b", (4,), 0.0), _call("b", (9,), 0.0, step=1, prompt=(1, 2, 3, 4, 5))]

    assert decision_point(better, worse) == ((1, 2, 3, 4, 5), (6,), (9,))
    told_apart = [_call("b", (4,), 0.0), _call("b", (9,), 0.0, step=1, prompt=(1, 2, 3, 4, 0))]
    assert decision_point(better, told_apart) is None  # the world answered them differently
    assert decision_point(better, better) is None


def test_thumbs_down_pairs_with_its_correction_or_a_thumbs_up_sibling() -> None:
    calls = [
        _call("a", (7,), None), _call("b", (8,), None), _call("c", (9,), None),
        _call("d", (6,), None, task="t2"),
    ]  # fmt: skip
    feedback = (
        _thumb("a", True),
        _thumb("b", False),
        _thumb("c", True),  # …then thumbs down: the last feedback on an answer counts
        _thumb("c", False, correction="ok"),
        _thumb("d", False),  # no sibling with thumbs up, no correction: no pair
        _thumb("z", False),  # an episode outside the window
    )
    data = _input(calls, feedback)

    assert ThumbPairs().pairs(data) == [
        PreferencePair("t1", PROMPT, (7,), (8,)),
        PreferencePair("t1", PROMPT, (ord("o"), ord("k"), 0), (9,)),
    ]
    assert ThumbPairs().judged(data) == [
        JudgedCompletion("t1", PROMPT, (7,), True),
        JudgedCompletion("t1", PROMPT, (8,), False),
        JudgedCompletion("t1", PROMPT, (9,), False),
        JudgedCompletion("t1", PROMPT, (ord("o"), ord("k"), 0), True),
        JudgedCompletion("t2", PROMPT, (6,), False),
    ]


def test_feedback_on_a_span_rates_that_call() -> None:
    calls = [_call("a", (4,), None, span="s0"), _call("a", (5,), None, step=1, span="s1")]

    assert ThumbPairs().judged(_input(calls, (_thumb("a", False, span="s0"),))) == [
        JudgedCompletion("t1", PROMPT, (4,), False)
    ]
    assert ThumbPairs().judged(_input(calls, (_thumb("a", True),))) == [
        JudgedCompletion("t1", PROMPT, (5,), True)  # no span: the answer, the last call
    ]
    assert ThumbPairs().judged(_input(calls, (_thumb("a", True, span="nope"),))) == []


def test_kto_data_from_reward_pairs_unpairs_them() -> None:
    data = _input([_call("a", (7,), 1.0), _call("b", (8,), 0.0)])
    assert RewardPairs().judged(data) == [
        JudgedCompletion("t1", PROMPT, (7,), True),
        JudgedCompletion("t1", PROMPT, (8,), False),
    ]


class _Nothing(PairingRule):
    name = "nothing"

    def pairs(self, data: PreferenceInput) -> list[PreferencePair]:
        return []


def test_rules_load_by_name_or_import_path() -> None:
    assert isinstance(load_pairing_rule("rewards"), RewardPairs)
    assert load_pairing_rule("thumbs").name == "thumbs"
    assert load_pairing_rule(f"{__name__}:_Nothing").name == "nothing"
    with pytest.raises(PairingLoadError, match="neither"):
        load_pairing_rule("best")
    with pytest.raises(PairingLoadError, match="nor a PairingRule"):
        load_pairing_rule("fulmen.trainers:Window")
    with pytest.raises(ValueError, match="min_gap"):
        RewardPairs(min_gap=0)
    with pytest.raises(ValueError, match="max_per_task"):
        RewardPairs(max_per_task=0)


@pytest.mark.parametrize(("desirable", "undesirable"), [(3, 29), (16, 96), (30, 30), (50, 7)])
def test_kto_reads_each_label_spread_evenly_through_its_batches(
    desirable: int, undesirable: int
) -> None:
    judged = [
        JudgedCompletion("t", PROMPT, (i,), i < desirable) for i in range(desirable + undesirable)
    ]

    rows = kto_dataset(judged, seed=7)

    assert sorted(map(tuple, rows["completion_ids"])) == [(i,) for i in range(len(judged))]
    assert rows["label"] == [i < desirable for i in (ids[0] for ids in rows["completion_ids"])]
    assert kto_dataset(judged, seed=7)["completion_ids"] == rows["completion_ids"]
    rarer = min(desirable, undesirable) / len(judged)
    for start in range(0, len(judged) - 7, 8):  # every full batch of 8
        batch = rows["label"][start : start + 8]
        rare = min(batch.count(True), batch.count(False))
        assert abs(rare - 8 * rarer) < 2  # the window's proportion, give or take one
