"""The one interface the scheduler drives jobs through, and the environment every job gets.

Implementations: `KubernetesJobs` (one Job per window) and `LocalJobs` (a subprocess per
window). Both run `fulmen train` with the window in `FULMEN_TRAIN_*` variables."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from fulmen.trainers.scheduler._policy import PlannedWindow

JobPhase = Literal["active", "succeeded", "failed"]


@dataclass(frozen=True, slots=True)
class JobStatus:
    """A job as its executor last saw it; `reason` says why a failed job failed."""

    window: PlannedWindow
    phase: JobPhase
    reason: str | None
    started_at: datetime
    finished_at: datetime | None


class JobExecutor(ABC):
    """Starts, lists and removes the jobs of windows; a job is named by its window."""

    @abstractmethod
    def start(self, window: PlannedWindow) -> bool:
        """Start the window's job; False when a job of that name exists already (started
        by this process, a restarted one, or another replica)."""

    @abstractmethod
    def jobs(self) -> list[JobStatus]:
        """Every job of this scheduler that still exists, active or finished."""

    @abstractmethod
    def wait(self, timeout_s: float) -> None:
        """Return when a job may have changed, or after `timeout_s`."""

    @abstractmethod
    def remove(self, window: PlannedWindow) -> None:
        """Delete the window's finished job (its outcome is recorded)."""

    @abstractmethod
    def close(self) -> None:
        """Release connections; the local runner also stops its running jobs."""


def window_env(window: PlannedWindow) -> dict[str, str]:
    """The `FULMEN_TRAIN_*` variables that tell `fulmen train` which window to train."""
    env = {
        "FULMEN_TRAIN_ALGO": window.target.algo,
        "FULMEN_TRAIN_AGENT_NAME": window.target.agent,
        "FULMEN_TRAIN_WINDOW_ID": window.window_id,
        "FULMEN_TRAIN_UNTIL": window.until.isoformat(),
    }
    if window.since is not None:
        env["FULMEN_TRAIN_SINCE"] = window.since.isoformat()
    return env
