"""The controller loop: follow the store's episodes per target, start each ready window's
job once, follow jobs to their end, and record how they ended.

Its state lives outside the process: the jobs (Kubernetes Jobs, named and annotated by
window) and the store's `training_windows` log. A restart, or a second replica, lists
the same jobs and reads the same log, so it computes the same windows and its attempt to
start one that exists is refused by name.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from fulmen.store import LightningStore
from fulmen.trainers.scheduler._executor import JobExecutor, JobStatus
from fulmen.trainers.scheduler._ledger import Frontier, WindowLedger
from fulmen.trainers.scheduler._policy import PlannedWindow, Target, admit, next_window
from fulmen.trainers.scheduler._settings import SchedulerSettings

EventKind = Literal["started", "exists", "succeeded", "failed", "lost"]

_SCAN_LIMIT = 100_000
"""The most episodes read per target and pass when no count trigger bounds the window."""


@dataclass(frozen=True, slots=True)
class SchedulerEvent:
    """Something the scheduler did: started a window's job (or found it started), saw a job
    end, or found a started window's job gone."""

    kind: EventKind
    window: PlannedWindow
    reason: str | None = None


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Scheduler:
    """Starts trainer jobs for ready windows through `jobs`; see the module's docstring."""

    def __init__(
        self,
        settings: SchedulerSettings,
        *,
        store: LightningStore,
        jobs: JobExecutor,
        on_event: Callable[[SchedulerEvent], None] | None = None,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.settings = settings
        self._ledger = WindowLedger(store)
        self._jobs = jobs
        self._on_event = on_event or (lambda event: None)
        self._clock = clock

    def tick(self) -> list[SchedulerEvent]:
        """One pass: reconcile the jobs with the log, then start what is ready and admitted."""
        events: list[SchedulerEvent] = []
        statuses = self._jobs.jobs()
        self._reconcile(statuses, events)
        active = [s for s in statuses if s.phase == "active"]
        busy = {s.window.target for s in active}
        frontiers = self._frontiers(statuses)
        horizon = self._clock() - timedelta(seconds=self.settings.window.settle_seconds)
        ready = [
            window
            for target in self._targets()
            if target not in busy
            and (window := self._next(target, frontiers.get(target), horizon)) is not None
        ]
        for window in admit(ready, active=len(active), max_concurrent=self.settings.max_concurrent):
            created = self._jobs.start(window)
            self._ledger.record(window, "started")
            self._emit(events, SchedulerEvent("started" if created else "exists", window))
        return events

    def run(self, stop: threading.Event) -> None:
        """Tick until `stop` is set, waiting for job changes (or `poll_seconds`) between."""
        while not stop.is_set():
            self.tick()
            self._jobs.wait(self.settings.poll_seconds)

    def _emit(self, events: list[SchedulerEvent], event: SchedulerEvent) -> None:
        events.append(event)
        self._on_event(event)

    def _targets(self) -> list[Target]:
        agents = self.settings.agents or self._ledger.agents()
        return [Target(agent, algo) for agent in agents for algo in self.settings.algos]

    def _frontiers(self, statuses: list[JobStatus]) -> dict[Target, Frontier]:
        """The store's frontiers, moved on by jobs whose start the log missed."""
        frontiers = self._ledger.frontiers()
        for status in statuses:
            window = status.window
            known = frontiers.get(window.target)
            if known is None or known.until < window.until:
                frontiers[window.target] = Frontier(window.until, window.mean_reward)
        return frontiers

    def _next(
        self, target: Target, frontier: Frontier | None, horizon: datetime
    ) -> PlannedWindow | None:
        rule = self.settings.window
        since = frontier.until if frontier else None
        episodes = self._ledger.episodes(
            target.agent, since=since, horizon=horizon, limit=rule.every_episodes or _SCAN_LIMIT
        )
        baseline = frontier.mean_reward if frontier else None
        return next_window(
            target, since=since, episodes=episodes, baseline=baseline, rule=rule, horizon=horizon
        )

    def _reconcile(self, statuses: list[JobStatus], events: list[SchedulerEvent]) -> None:
        states = self._ledger.states([s.window.window_id for s in statuses])
        for status in statuses:
            window = status.window
            recorded = states.get(window.window_id, set())
            if "started" not in recorded:  # started just before a crash: log it now
                self._ledger.record(window, "started")
            if status.phase == "active":
                continue
            if not recorded & {"succeeded", "failed"}:
                if status.phase == "failed" and not self._ledger.has_run(window.window_id):
                    self._ledger.record_failure(
                        window, status.reason or "failed", started_at=status.started_at,
                        finished_at=status.finished_at or self._clock(),
                    )  # fmt: skip
                self._ledger.record(window, status.phase, reason=status.reason)
                self._emit(events, SchedulerEvent(status.phase, window, status.reason))
            if self.settings.delete_finished:
                self._jobs.remove(window)
        present = {s.window.window_id for s in statuses}
        lost_before = self._clock() - timedelta(seconds=self.settings.lost_after_seconds)
        for opened in self._ledger.open_windows():
            window = opened.window
            if window.window_id in present or opened.started_at > lost_before:
                continue
            reason = f"job {window.job_name} was removed before its end was seen"
            if not self._ledger.has_run(window.window_id):
                self._ledger.record_failure(
                    window, reason, started_at=opened.started_at, finished_at=self._clock()
                )
            self._ledger.record(window, "failed", reason=reason)
            self._emit(events, SchedulerEvent("lost", window, reason))
