"""The local runner: each window's job is a subprocess running the same entrypoint as the
Kubernetes Job (`fulmen train`, the window in `FULMEN_TRAIN_*`), retried with backoff.

Each job writes its result (`FULMEN_TRAIN_RESULT_FILE`) beside its log; `result()` reads it
back, e.g. to put the published version on an in-process control topic.

Jobs live as long as this process: `close()` stops those still running, and a scheduler
started again finds their windows open in the store with no job, and records them failed.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from fulmen.trainers.scheduler._executor import JobExecutor, JobPhase, JobStatus, window_env
from fulmen.trainers.scheduler._policy import PlannedWindow, RetryPolicy
from fulmen.trainers.scheduler._settings import LocalJobSettings

_NOT_RETRIED_EXIT_CODES = (3, 4)
"""`fulmen train`'s "held back by the gate" and "nothing to train on" (recorded by it)."""
_TAIL_CHARS = 2000
_POLL_SECONDS = 0.2


@dataclass
class _Job:
    window: PlannedWindow
    log: Path
    started_at: datetime
    process: subprocess.Popen[bytes] | None = None
    failures: int = 0
    retry_at: float | None = None
    phase: JobPhase = "active"
    reason: str | None = None
    finished_at: datetime | None = None
    handles: list[IO[bytes]] = field(default_factory=list)


class LocalJobs(JobExecutor):
    """Subprocess jobs; `env` is added to this process's environment for each (e.g. the
    URL of the store this process serves)."""

    def __init__(
        self,
        settings: LocalJobSettings,
        *,
        retry: RetryPolicy,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self._settings = settings
        self._retry = retry
        self._env = dict(env or {})
        self._jobs: dict[str, _Job] = {}

    def start(self, window: PlannedWindow) -> bool:
        if window.job_name in self._jobs:
            return False
        self._settings.work_dir.mkdir(parents=True, exist_ok=True)
        job = _Job(window, self.log(window), datetime.now(UTC))
        self._jobs[window.job_name] = job
        self._launch(job)
        return True

    def _launch(self, job: _Job) -> None:
        log = job.log.open("ab")
        job.handles.append(log)
        result = {"FULMEN_TRAIN_RESULT_FILE": str(self._result_file(job.window))}
        env = {**os.environ, **self._env, **window_env(job.window), **result}
        job.process = subprocess.Popen(
            self._settings.command, env=env, stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        job.retry_at = None

    def log(self, window: PlannedWindow) -> Path:
        """Where the window's job writes its output (every attempt, appended)."""
        return self._settings.work_dir / f"{window.job_name}.log"

    def _result_file(self, window: PlannedWindow) -> Path:
        return self._settings.work_dir / f"{window.job_name}.result.json"

    def result(self, window: PlannedWindow) -> dict[str, Any] | None:
        """The result the window's job wrote (`fulmen.trainers.JobResult` as JSON, with the
        published `version`), or None when it wrote none."""
        path = self._result_file(window)
        if not path.is_file():
            return None
        loaded: dict[str, Any] = json.loads(path.read_text())
        return loaded

    def jobs(self) -> list[JobStatus]:
        for job in self._jobs.values():
            self._advance(job)
        return [
            JobStatus(job.window, job.phase, job.reason, job.started_at, job.finished_at)
            for job in self._jobs.values()
        ]

    def _advance(self, job: _Job) -> None:
        if job.phase != "active":
            return
        if job.process is None:
            if job.retry_at is not None and time.monotonic() >= job.retry_at:
                self._launch(job)
            return
        code = job.process.poll()
        if code is None:
            return
        job.process = None
        if code == 0:
            self._finish(job, "succeeded", None)
            return
        job.failures += 1
        delay = None if code in _NOT_RETRIED_EXIT_CODES else self._retry.delay(job.failures)
        if delay is None:
            tail = job.log.read_text(errors="replace")[-_TAIL_CHARS:].strip()
            attempts = f"{job.failures} attempt{'s' if job.failures != 1 else ''}"
            self._finish(job, "failed", f"exit code {code} after {attempts}: {tail}")
        else:
            job.retry_at = time.monotonic() + delay

    def _finish(self, job: _Job, phase: JobPhase, reason: str | None) -> None:
        job.phase, job.reason, job.finished_at = phase, reason, datetime.now(UTC)
        for handle in job.handles:
            handle.close()
        job.handles.clear()

    def wait(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for job in self._jobs.values():
                due = job.retry_at is not None and time.monotonic() >= job.retry_at
                if due or (job.process is not None and job.process.poll() is not None):
                    return
            time.sleep(_POLL_SECONDS)

    def remove(self, window: PlannedWindow) -> None:
        job = self._jobs.get(window.job_name)
        if job is not None and job.phase != "active":
            del self._jobs[window.job_name]

    def close(self) -> None:
        for job in self._jobs.values():
            if job.process is not None:
                job.process.terminate()
                job.process.wait()
            for handle in job.handles:
                handle.close()
        self._jobs.clear()
