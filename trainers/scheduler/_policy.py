"""When a window is ready, what it is called, and which ready windows may start: pure logic.

A target (an agent and an algorithm) has a frontier: the end of its last scheduled window
(none before the first). Its next window starts there and ends at the first cut that the
episodes after the frontier make, in `finished_at` order. Episodes are the scored ones
(`WindowLedger.episodes`): an unscored episode is in no trainer's window, so it counts
towards no trigger and is no 0 in a mean reward.

* ``episodes``: after the `every_episodes`-th episode;
* ``elapsed``: `every_seconds` after the window's start (the first episode's time for a
  target's first window), once at least `min_episodes` episodes are in it — if fewer are
  there by then, after the `min_episodes`-th episode;
* ``reward_drop``: after the episode at which the window's mean reward so far, over at least
  `min_episodes` episodes, falls more than `reward_drop` below the previous window's mean.

The cut is derived from the data only, never from the clock of the process that computes
it, so every replica and every restart computes the same window, with the same id and the
same Job name: a second attempt to start it is refused by name. Only episodes that finished
`settle_seconds` before now are looked at, so episodes still being assembled do not move a
cut after it was computed. Windows partition time: `[since, until)`, at microseconds.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, Field, model_validator

TriggerName = Literal["episodes", "elapsed", "reward_drop"]
"""What made a window ready."""

_MICROSECOND = timedelta(microseconds=1)


class WindowRule(BaseModel):
    """When a target's next window is ready; unset triggers are off, at least one is on."""

    every_episodes: int | None = Field(default=64, ge=1)
    """Ready after this many new episodes."""
    every_seconds: float | None = Field(default=None, gt=0)
    """Ready this long after the window's start, with at least `min_episodes` in it."""
    reward_drop: float | None = Field(default=None, gt=0)
    """Ready when the window's mean reward falls this far below the previous window's."""
    min_episodes: int = Field(default=1, ge=1)
    """The fewest episodes a time- or reward-triggered window holds."""
    settle_seconds: float = Field(default=5.0, ge=0)
    """Episodes that finished less than this long ago are not counted yet."""

    @model_validator(mode="after")
    def _one_trigger(self) -> WindowRule:
        if self.every_episodes is None and self.every_seconds is None and self.reward_drop is None:
            raise ValueError("set at least one of every_episodes, every_seconds, reward_drop")
        return self


@dataclass(frozen=True, slots=True)
class Target:
    """What a window trains: one agent's version, by one algorithm."""

    agent: str
    algo: str
    """A built-in algorithm's name, or a custom one's `module:Class` path."""


@dataclass(frozen=True, slots=True)
class EpisodePoint:
    """A scored episode as the scheduler sees it: when it finished and its reward."""

    finished_at: datetime
    reward: float


@dataclass(frozen=True, slots=True)
class PlannedWindow:
    """A window of one target, `[since, until)` (`since` None: from the beginning)."""

    target: Target
    since: datetime | None
    until: datetime
    episodes: int
    mean_reward: float
    trigger: TriggerName

    @property
    def digest(self) -> str:
        """20 hex digits naming the window: a hash of its target and bounds."""
        since = self.since.isoformat() if self.since else ""
        key = f"{self.target.agent}\0{self.target.algo}\0{since}\0{self.until.isoformat()}"
        return hashlib.sha256(key.encode()).hexdigest()[:20]

    @property
    def window_id(self) -> str:
        """The id the job trains under (`TrainSettings.window_id`, `training_runs`)."""
        return f"w-{self.digest}"

    @property
    def job_name(self) -> str:
        """The job's name, a DNS label of at most 50 characters: the same window, the same
        name. A custom algorithm's path shows as `custom` (the digest tells windows apart)."""
        family = self.target.algo if self.target.algo.isalpha() else "custom"
        return f"fulmen-train-{family[:16].lower()}-{self.digest}"


def next_window(
    target: Target,
    *,
    since: datetime | None,
    episodes: Sequence[EpisodePoint],
    baseline: float | None,
    rule: WindowRule,
    horizon: datetime,
) -> PlannedWindow | None:
    """The target's next window if it is ready, else None.

    `episodes` are those that finished in `[since, horizon)` in `finished_at` order, where
    `horizon` is now less `rule.settle_seconds`; `baseline` is the previous window's mean
    reward (None: no previous window, no reward-drop trigger).
    """
    if not episodes:
        return None
    start = since if since is not None else episodes[0].finished_at
    deadline = start + timedelta(seconds=rule.every_seconds) if rule.every_seconds else None
    total = 0.0

    def window(count: int, until: datetime, trigger: TriggerName) -> PlannedWindow:
        mean = sum(e.reward for e in episodes[:count]) / count
        return PlannedWindow(target, since, until, count, mean, trigger)

    for index, episode in enumerate(episodes):
        counted = index  # episodes before this one
        if (
            deadline is not None
            and counted >= rule.min_episodes
            and episode.finished_at >= deadline
        ):
            return window(counted, max(deadline, _after(episodes[counted - 1])), "elapsed")
        counted += 1
        total += episode.reward
        if rule.every_episodes is not None and counted >= rule.every_episodes:
            return window(counted, _after(episode), "episodes")
        if (
            rule.reward_drop is not None
            and baseline is not None
            and counted >= rule.min_episodes
            and total / counted < baseline - rule.reward_drop
        ):
            return window(counted, _after(episode), "reward_drop")
    if deadline is not None and len(episodes) >= rule.min_episodes and horizon >= deadline:
        return window(len(episodes), max(deadline, _after(episodes[-1])), "elapsed")
    return None


def _after(episode: EpisodePoint) -> datetime:
    """The first microsecond after the episode finished: an exclusive bound that keeps it."""
    return episode.finished_at + _MICROSECOND


def admit(
    ready: Sequence[PlannedWindow], *, active: int, max_concurrent: int
) -> list[PlannedWindow]:
    """The ready windows that may start now, oldest first, so that at most `max_concurrent`
    jobs run at once (`active` run already)."""
    ordered = sorted(ready, key=lambda w: (w.until, w.window_id))
    return ordered[: max(max_concurrent - active, 0)]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often a failed job is tried again, and how long to wait before each retry."""

    retries: int = 1
    backoff_seconds: float = 10.0
    max_backoff_seconds: float = 360.0

    def delay(self, failures: int) -> float | None:
        """Seconds to wait after the `failures`-th failure, or None when retries are spent."""
        if failures > self.retries:
            return None
        backoff: float = self.backoff_seconds * 2.0 ** (failures - 1)
        return min(backoff, self.max_backoff_seconds)
