"""The scheduler's pure decisions: window cuts, ids, admission and retry backoff."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from fulmen.trainers.scheduler import (
    EpisodePoint,
    PlannedWindow,
    RetryPolicy,
    Target,
    WindowRule,
    admit,
    next_window,
)

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
AGENT = Target("calculator", "sft")


def points(*spec: tuple[float, float]) -> list[EpisodePoint]:
    """(seconds after T0, reward) pairs."""
    return [EpisodePoint(T0 + timedelta(seconds=s), r) for s, r in spec]


def test_count_trigger_cuts_after_the_nth_episode() -> None:
    episodes = points((1, 1.0), (2, 0.0), (3, 1.0), (4, 1.0))
    rule = WindowRule(every_episodes=3)
    window = next_window(AGENT, since=None, episodes=episodes, baseline=None, rule=rule,
                         horizon=T0 + timedelta(minutes=1))  # fmt: skip
    assert window is not None
    assert (window.episodes, window.trigger) == (3, "episodes")
    assert window.until == T0 + timedelta(seconds=3, microseconds=1)
    assert window.mean_reward == pytest.approx(2 / 3)
    # Fewer than N: not ready.
    assert next_window(AGENT, since=None, episodes=episodes[:2], baseline=None, rule=rule,
                       horizon=T0 + timedelta(minutes=1)) is None  # fmt: skip


def test_the_same_data_gives_the_same_window_and_job_name() -> None:
    rule = WindowRule(every_episodes=2)
    since = T0 - timedelta(hours=1)
    first = next_window(AGENT, since=since, episodes=points((1, 1), (2, 1), (3, 1)),
                        baseline=None, rule=rule, horizon=T0 + timedelta(seconds=10))  # fmt: skip
    again = next_window(AGENT, since=since, episodes=points((1, 1), (2, 1)), baseline=None,
                        rule=rule, horizon=T0 + timedelta(hours=5))  # fmt: skip
    assert first is not None
    assert first == again
    assert first.job_name.startswith("fulmen-train-sft-")
    assert len(first.job_name) <= 63
    other = PlannedWindow(Target("other", "sft"), since, first.until, 2, 1.0, "episodes")
    assert other.job_name != first.job_name


def test_elapsed_trigger_cuts_at_the_deadline_once_the_horizon_passes_it() -> None:
    rule = WindowRule(every_episodes=None, every_seconds=60, min_episodes=2)
    episodes = points((10, 1.0), (20, 1.0))
    early = next_window(AGENT, since=T0, episodes=episodes, baseline=None, rule=rule,
                        horizon=T0 + timedelta(seconds=59))  # fmt: skip
    assert early is None
    window = next_window(AGENT, since=T0, episodes=episodes, baseline=None, rule=rule,
                         horizon=T0 + timedelta(seconds=61))  # fmt: skip
    assert window is not None
    assert (window.until, window.episodes, window.trigger) == (
        T0 + timedelta(seconds=60),
        2,
        "elapsed",
    )
    # An episode after the deadline stays out, whatever the horizon.
    later = next_window(AGENT, since=T0, episodes=[*episodes, *points((70, 0.0))],
                        baseline=None, rule=rule, horizon=T0 + timedelta(seconds=90))  # fmt: skip
    assert later == window


def test_elapsed_trigger_waits_for_min_episodes_then_cuts_after_them() -> None:
    rule = WindowRule(every_episodes=None, every_seconds=60, min_episodes=3)
    episodes = points((10, 1.0), (100, 1.0), (200, 1.0), (300, 1.0))
    window = next_window(AGENT, since=T0, episodes=episodes, baseline=None, rule=rule,
                         horizon=T0 + timedelta(seconds=400))  # fmt: skip
    assert window is not None
    assert window.episodes == 3
    assert window.until == T0 + timedelta(seconds=200, microseconds=1)


def test_reward_drop_cuts_where_the_mean_falls_below_the_baseline() -> None:
    rule = WindowRule(every_episodes=100, reward_drop=0.3, min_episodes=2)
    episodes = points((1, 1.0), (2, 0.5), (3, 0.0), (4, 0.0))
    window = next_window(AGENT, since=T0, episodes=episodes, baseline=0.9, rule=rule,
                         horizon=T0 + timedelta(seconds=10))  # fmt: skip
    assert window is not None
    # means: 1.0, 0.75, 0.5 < 0.9 - 0.3 at the third episode
    assert (window.episodes, window.trigger) == (3, "reward_drop")
    # No previous window, no baseline: no drop trigger.
    assert next_window(AGENT, since=None, episodes=episodes, baseline=None, rule=rule,
                       horizon=T0 + timedelta(seconds=10)) is None  # fmt: skip


def test_a_rule_needs_a_trigger() -> None:
    with pytest.raises(ValidationError, match="at least one"):
        WindowRule(every_episodes=None)


def test_admit_keeps_the_cap_oldest_first() -> None:
    windows = [
        PlannedWindow(
            Target(f"agent-{i}", "rl"), None, T0 + timedelta(seconds=10 - i), 5, 1.0, "episodes"
        )
        for i in range(4)
    ]
    assert admit(windows, active=1, max_concurrent=3) == [windows[3], windows[2]]
    assert admit(windows, active=3, max_concurrent=3) == []
    assert admit(windows, active=5, max_concurrent=3) == []


def test_retry_backoff_doubles_up_to_the_cap_then_stops() -> None:
    retry = RetryPolicy(retries=3, backoff_seconds=10, max_backoff_seconds=25)
    assert [retry.delay(n) for n in (1, 2, 3, 4)] == [10, 20, 25, None]
    assert RetryPolicy(retries=0).delay(1) is None


def test_preference_algorithms_are_targets_of_their_own() -> None:
    """`FULMEN_SCHEDULER_ALGOS=["dpo","kto"]`: each algorithm of an agent has its own window
    sequence and job names."""
    from fulmen.trainers.scheduler import SchedulerSettings

    settings = SchedulerSettings(algos=["dpo", "kto"])
    rule = WindowRule(every_episodes=1)
    names = []
    for algo in settings.algos:
        horizon = T0 + timedelta(seconds=10)
        target = Target("calculator", algo)
        window = next_window(
            target, since=None, episodes=points((1, 1)), baseline=None, rule=rule, horizon=horizon
        )
        assert window is not None
        names.append(window.job_name)
    assert [name.rsplit("-", 1)[0] for name in names] == ["fulmen-train-dpo", "fulmen-train-kto"]
