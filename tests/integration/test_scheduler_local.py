"""The scheduler driving the local runner: `fulmen train`'s environment contract, retries
with backoff, and failures recorded in the store (a stand-in command, not a real trainer)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fulmen.store import LightningStore
from fulmen.trainers.scheduler import (
    LocalJobs,
    LocalJobSettings,
    RetryPolicy,
    Scheduler,
    SchedulerEvent,
    SchedulerSettings,
    WindowRule,
)
from tests.support.episodes import insert_episodes

# Fails its first attempt at every window; fails every attempt for the agent "bad".
TRAINER = """
import json, os, pathlib, sys
env = {k: v for k, v in os.environ.items() if k.startswith("FULMEN_TRAIN_")}
marker = pathlib.Path(os.environ["MARKERS"]) / env["FULMEN_TRAIN_WINDOW_ID"]
(pathlib.Path(os.environ["MARKERS"]) / (env["FULMEN_TRAIN_WINDOW_ID"] + ".json")).write_text(
    json.dumps(env))
if env["FULMEN_TRAIN_AGENT_NAME"] == "bad" or not marker.exists():
    marker.touch()
    print("trainer crashed: CUDA out of memory", file=sys.stderr)
    sys.exit(1)
"""


def test_local_jobs_get_the_window_are_retried_and_failures_recorded(
    new_store: Callable[[], LightningStore], tmp_path: Path
) -> None:
    store = new_store()
    start = datetime.now(UTC) - timedelta(hours=1)
    for agent in ("good", "bad"):
        insert_episodes(store, agent, [start + timedelta(seconds=i) for i in range(3)])
    settings = SchedulerSettings(
        executor="local", agents=["good", "bad"],
        window=WindowRule(every_episodes=3, settle_seconds=0), max_concurrent=2, retries=1,
        retry_backoff_seconds=0.1, poll_seconds=0.2,
        local=LocalJobSettings(command=[sys.executable, "-c", TRAINER], work_dir=tmp_path / "jobs"),
    )  # fmt: skip
    markers = tmp_path / "markers"
    markers.mkdir()
    jobs = LocalJobs(
        settings.local, retry=RetryPolicy(settings.retries, settings.retry_backoff_seconds),
        env={"MARKERS": str(markers)},
    )  # fmt: skip
    events: list[SchedulerEvent] = []
    scheduler = Scheduler(settings, store=store, jobs=jobs, on_event=events.append)
    deadline = time.monotonic() + 60
    while sum(e.kind in ("succeeded", "failed") for e in events) < 2:
        assert time.monotonic() < deadline, events
        scheduler.tick()
        jobs.wait(settings.poll_seconds)
    jobs.close()
    ended = {e.window.target.agent: e for e in events if e.kind in ("succeeded", "failed")}
    assert ended["good"].kind == "succeeded"  # after one retry
    assert ended["bad"].kind == "failed"
    good = ended["good"].window
    env = json.loads((markers / f"{good.window_id}.json").read_text())
    assert env == {
        "FULMEN_TRAIN_ALGO": "sft", "FULMEN_TRAIN_AGENT_NAME": "good",
        "FULMEN_TRAIN_WINDOW_ID": good.window_id, "FULMEN_TRAIN_UNTIL": good.until.isoformat(),
        "FULMEN_TRAIN_RESULT_FILE": str(tmp_path / "jobs" / f"{good.job_name}.result.json"),
    }  # fmt: skip
    db = store.settings.database
    runs = store.sql(f"SELECT agent_name, outcome, reason FROM {db}.training_runs").to_pylist()
    assert len(runs) == 1
    assert runs[0]["agent_name"] == "bad"
    assert runs[0]["outcome"] == "failed"
    assert "exit code 1 after 2 attempts" in runs[0]["reason"]
    assert "trainer crashed: CUDA out of memory" in runs[0]["reason"]
    # A new scheduler over the same store starts nothing again: both windows are done.
    again = Scheduler(settings, store=store, jobs=LocalJobs(settings.local, retry=RetryPolicy()))
    assert again.tick() == []
