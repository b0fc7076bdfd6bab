"""The demo's sizing arithmetic (fulmen.demo._plan)."""

from __future__ import annotations

from fulmen.demo._plan import (
    MIN_HELDOUT,
    MIN_TASKS,
    REFERENCE_ROLLOUT_S,
    Pace,
    first_pace,
    heldout_tasks,
    window_tasks,
)

BUDGET_S = 14 * 60


def _rounds_fit(rollout_s: float, job_s: float, tasks: int, attempts: int = 4) -> float:
    return 2 * (tasks * attempts * rollout_s + job_s)


def test_the_reference_machine_gets_the_defaults() -> None:
    heldout = heldout_tasks(50, REFERENCE_ROLLOUT_S)
    pace = first_pace(REFERENCE_ROLLOUT_S, heldout)
    assert heldout == 50
    tasks = window_tasks(BUDGET_S, pace, rounds_left=2, attempts=4, most=24)
    assert MIN_TASKS <= tasks <= 24
    assert _rounds_fit(pace.rollout_s, pace.job_s, tasks) <= BUDGET_S


def test_a_machine_twice_as_slow_gets_smaller_rounds_that_still_fit_twice() -> None:
    slow = 2 * REFERENCE_ROLLOUT_S
    heldout = heldout_tasks(50, slow)
    pace = first_pace(slow, heldout)
    assert MIN_HELDOUT <= heldout < 50
    tasks = window_tasks(BUDGET_S, pace, rounds_left=2, attempts=4, most=24)
    reference = window_tasks(
        BUDGET_S, first_pace(REFERENCE_ROLLOUT_S, 50), rounds_left=2, attempts=4, most=24
    )
    assert MIN_TASKS <= tasks < reference
    assert _rounds_fit(pace.rollout_s, pace.job_s, tasks) <= BUDGET_S


def test_a_fast_machine_is_capped_at_the_settings() -> None:
    assert heldout_tasks(50, 0.1) == 50
    pace = first_pace(0.1, 50)
    assert window_tasks(BUDGET_S, pace, rounds_left=2, attempts=4, most=24) == 24


def test_no_round_when_the_rest_of_the_budget_cannot_hold_one() -> None:
    pace = Pace(rollout_s=5.0, job_s=200.0)
    assert window_tasks(230.0, pace, rounds_left=1, attempts=4, most=24) < MIN_TASKS
    assert window_tasks(-10.0, pace, rounds_left=1, attempts=4, most=24) == 0


def test_the_last_round_may_use_what_remains() -> None:
    pace = Pace(rollout_s=3.0, job_s=100.0)
    one = window_tasks(600.0, pace, rounds_left=1, attempts=4, most=100)
    two = window_tasks(600.0, pace, rounds_left=2, attempts=4, most=100)
    assert one > two
