"""The demo's sizing arithmetic (fulmen.demo._plan)."""

from __future__ import annotations

from fulmen.demo._plan import (
    MARGIN,
    MIN_HELDOUT,
    MIN_TASKS,
    REFERENCE_ROLLOUT_S,
    REPORT_S,
    Pace,
    first_pace,
    heldout_tasks,
    measured_pace,
    window_seconds,
    window_tasks,
)

BUDGET_S = 13 * 60


def _two_rounds_s(pace: Pace, tasks: int, attempts: int = 4) -> float:
    """Both rounds at the estimated pace (jobs with the margin), the first job scoring its
    parent as well."""
    jobs_s = MARGIN * (2 * pace.job_s + pace.parent_eval_s)
    return 2 * tasks * attempts * pace.rollout_s + jobs_s


def test_the_reference_machine_gets_the_defaults() -> None:
    heldout = heldout_tasks(50, REFERENCE_ROLLOUT_S)
    pace = first_pace(REFERENCE_ROLLOUT_S, heldout)
    assert heldout == 50
    tasks = window_tasks(BUDGET_S, pace, rounds_left=2, attempts=4, most=24)
    assert MIN_TASKS <= tasks <= 24
    assert _two_rounds_s(pace, tasks) + REPORT_S <= BUDGET_S


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
    assert _two_rounds_s(pace, tasks) + REPORT_S <= BUDGET_S


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


def test_the_first_job_is_estimated_to_score_the_base_as_well() -> None:
    pace = first_pace(REFERENCE_ROLLOUT_S, 50)
    assert pace.parent_eval_s > 0
    cheaper = Pace(pace.rollout_s, pace.job_s, 0.0)
    assert window_tasks(BUDGET_S, cheaper, rounds_left=2, attempts=4, most=100) > window_tasks(
        BUDGET_S, pace, rounds_left=2, attempts=4, most=100
    )


def test_after_a_published_job_the_next_one_reuses_the_parent_score() -> None:
    before = first_pace(REFERENCE_ROLLOUT_S, 50)
    after = measured_pace(4.0, 200.0, 80.0, published=True, before=before)
    assert after == Pace(4.0, 120.0, 0.0)


def test_after_a_gate_failure_the_next_job_scores_the_same_parent_again() -> None:
    before = first_pace(REFERENCE_ROLLOUT_S, 50)
    assert measured_pace(4.0, 200.0, 80.0, published=False, before=before) == Pace(4.0, 120.0, 80.0)
    reused = measured_pace(4.0, 120.0, 0.0, published=False, before=Pace(4.0, 120.0, 0.0))
    assert reused == Pace(4.0, 120.0, 0.0)


def test_a_window_share_holds_its_tasks_at_the_pace() -> None:
    pace = Pace(rollout_s=3.0, job_s=100.0, parent_eval_s=40.0)
    share = window_seconds(600.0, pace, rounds_left=2)
    tasks = window_tasks(600.0, pace, rounds_left=2, attempts=4, most=100)
    assert tasks * 4 * pace.rollout_s <= share < (tasks + 1) * 4 * pace.rollout_s
    assert 2 * share + MARGIN * (2 * pace.job_s + pace.parent_eval_s) + REPORT_S == 600.0
