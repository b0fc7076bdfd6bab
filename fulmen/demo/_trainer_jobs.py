"""The demo's trainer jobs: `fulmen train` subprocesses (the Kubernetes Job's entrypoint)
that the scheduler starts one at a time, each told by its environment where the served
store, the base model and the run's directories are."""

from __future__ import annotations

import sys
from pathlib import Path

from fulmen.demo._settings import DemoSettings
from fulmen.models import OMP_NUM_THREADS
from fulmen.store import StoreSettings, client_env
from fulmen.trainers.scheduler import LocalJobSettings, SchedulerSettings, WindowRule


def scheduler_settings(settings: DemoSettings) -> SchedulerSettings:
    """One local job at a time, never retried, for each window of `window_episodes` of the
    agent's episodes; jobs work under `<out_dir>/jobs`."""
    return SchedulerSettings(
        executor="local", agents=[settings.agent_name], algos=[settings.algo],
        window=WindowRule(every_episodes=settings.window_episodes, settle_seconds=0),
        max_concurrent=1, retries=0, poll_seconds=5.0,  # a job's end wakes it at once
        local=LocalJobSettings(command=[sys.executable, "-m", "fulmen.cli", "train"],
                               work_dir=settings.out_dir / "jobs"),
    )  # fmt: skip


def job_env(
    settings: DemoSettings,
    store: StoreSettings,
    *,
    model_dir: Path,
    threads: int | None,
    heldout: int,
) -> dict[str, str]:
    """A job's environment: the served `store` (its `url` set), the in-process transport
    with the version relayed by the loop, the task, base model and output directories, a
    gate of `heldout` tasks, `threads` for torch when measured, then `settings.train_env`."""
    out = settings.out_dir.resolve()
    return {
        **client_env(store),
        "FULMEN_STORE__DATABASE": store.database,
        "FULMEN_TRANSPORT": "inprocess",
        "FULMEN_TRAIN_RELAY_VERSION": "true",  # this loop puts it on the control topic
        "FULMEN_TRAIN_TASK": settings.task,
        "FULMEN_TRAIN_BASE_MODEL": str(model_dir),
        "FULMEN_TRAIN_ARTIFACTS_DIR": str(out / "artifacts"),
        "FULMEN_TRAIN_SNAPSHOTS_DIR": str(out / "windows"),
        "FULMEN_TRAIN_GATE__HELDOUT_TASKS": str(heldout),
        "FULMEN_TRAIN_GATE__MAX_NEW_TOKENS": str(settings.max_tokens),
        **({OMP_NUM_THREADS: str(threads)} if threads else {}),
        **settings.train_env,
    }
