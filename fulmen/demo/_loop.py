"""The demo's loop on the embedded default: one process runs the agent, the policy server,
the in-process bus, the embedded stream runner and the scheduler, and serves the chDB store
to the trainer jobs, which are `fulmen train` subprocesses (the Kubernetes Job's entrypoint).

    agent ──OpenAI API──▶ policy server          (examples/openai_calculator.py)
      └─ spans, rewards ─▶ in-process bus ─▶ embedded runner ─▶ store (episodes)
    scheduler: window full ─▶ `fulmen train` subprocess ─▶ version in the store
      └─ version ─▶ control topic ─▶ agent swaps model, server loads the adapter

The agent waits while a job trains: on 2 cores, training gets the CPU; in production the
agents never stop and the next window fills meanwhile.
"""

from __future__ import annotations

import importlib
import math
import secrets
import time
from pathlib import Path
from types import ModuleType

import openai
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

import fulmen
from fulmen._progress import progress_for
from fulmen.auth import ApiKeys
from fulmen.demo._canary import DemoReleases
from fulmen.demo._plan import (
    MIN_TASKS,
    MIN_VERSIONS,
    REFERENCE_ROLLOUT_S,
    Pace,
    first_pace,
    heldout_tasks,
    measured_pace,
    window_seconds,
    window_tasks,
)
from fulmen.demo._records import JobRecord, LoopRecord, job_line
from fulmen.demo._settings import DemoSettings
from fulmen.demo._trainer_jobs import job_env, scheduler_settings
from fulmen.models import base_model_dir, fastest_cpu_threads
from fulmen.producers import FulmenSettings, InProcessBus
from fulmen.schemas import VersionEvent
from fulmen.serving import PolicyServer, serve_in_thread
from fulmen.store import LightningStore
from fulmen.streams import AssemblyPolicy, EmbeddedRunner, load_credit_assigner
from fulmen.trainers import AgentTask, load_task
from fulmen.trainers.scheduler import LocalJobs, RetryPolicy, Scheduler, SchedulerEvent

_CALIBRATION_TASKS = 2
_PACE_ROLLOUTS = 48  # the pace is the mean of the latest rollouts: machines get busy
_WINDOW_SEEN_S = 30.0
_TICK_S = 0.5


class DemoLoop:
    """The parts of the loop, wired; `run()` drives them until enough jobs have ended."""

    def __init__(self, settings: DemoSettings, store: LightningStore, console: Console) -> None:
        self.settings = settings
        self.store = store
        self.console = console
        self.task: AgentTask = load_task(settings.task)
        self.agent: ModuleType = importlib.import_module(settings.agent)
        self.model_dir = base_model_dir() if settings.model == "smollm2" else Path(settings.model)
        # Before the server loads: the server and every trainer job use the measured count.
        self.threads = fastest_cpu_threads() if settings.adapt else None
        self.server = PolicyServer(
            self.model_dir,
            name=self.agent.DEFAULT_MODEL,
            model_roots=[settings.out_dir / "artifacts"],  # where its jobs write versions
        )
        self.api_key = secrets.token_urlsafe(32)  # the server listens on loopback, not open
        self.bus = InProcessBus()
        out = settings.out_dir
        producer = {"agent_name": settings.agent_name, "spill_dir": out / "spill",
                    "request_token_ids": True}  # fmt: skip
        fulmen.configure(FulmenSettings(producer=producer), bus=self.bus)
        self.releases = DemoReleases(
            self.bus, store, self.server, agent_name=settings.agent_name,
            share=settings.canary_share, alpha=settings.canary_alpha,
        )  # fmt: skip
        credit = load_credit_assigner(settings.credit)
        # A grace period longer than the emitter's hand-off: an episode is assembled once,
        # with its reward, rather than revised when the reward arrives.
        policy = AssemblyPolicy(grace_s=1.0, credit=credit)
        self.runner = EmbeddedRunner(self.bus, store, policy=policy)
        self.scheduler_settings = scheduler_settings(settings)
        self.jobs = self._local_jobs(settings.heldout_tasks)
        self.record = LoopRecord()
        self._started: dict[str, float] = {}
        self._batch = 0
        self._window_done = 0  # rollouts of the current window already run
        self._rollout_seconds: list[float] = []

    def _local_jobs(self, heldout: int) -> LocalJobs:
        env = job_env(self.settings, self.store.settings, model_dir=self.model_dir,
                      threads=self.threads, heldout=heldout)  # fmt: skip
        return LocalJobs(self.scheduler_settings.local, retry=RetryPolicy(0), env=env)

    def run(self) -> LoopRecord:
        """Agent traffic, a job per full window, versions swapped in; until `versions` jobs
        ended, or until the next round (a window of traffic and its job) would not fit the
        budget. With `adapt`, the first rollouts time this machine and every round is sized
        so that at least two fit (`_plan.py`)."""
        start = time.monotonic()
        deadline = start + self.settings.budget_minutes * 60
        keys = ApiKeys([self.api_key])
        with serve_in_thread(self.server, keys=keys) as url, self._progress() as progress:
            client = openai.OpenAI(base_url=url, api_key=self.api_key)
            pace = self._calibrate(client, progress) if self.settings.adapt else None
            scheduler = Scheduler(
                self.scheduler_settings, store=self.store, jobs=self.jobs, on_event=self._on_event
            )
            longest, round_start = 0.0, start
            while True:
                scheduler.tick()
                if len(self.record.jobs) >= self.settings.versions:
                    break
                if self._job_running():
                    self.jobs.wait(self.scheduler_settings.poll_seconds)
                    continue
                now = time.monotonic()
                if self.record.jobs:  # a round ended: its window and its job
                    longest = max(longest, now - round_start)
                    pace = self._measured(pace)
                planned = self._next_window(deadline - now, longest, pace)
                if planned is None:
                    self.console.print("[yellow]another round would overrun the budget[/]")
                    break
                round_start = now
                tasks, share_s = planned
                self._agent_window(client, progress, tasks, until=now + share_s)
                self._decide_release()
                self._await_job(scheduler)
        self.jobs.close()
        self.runner.finish()
        fulmen.shutdown()
        self.record.wall_s = time.monotonic() - start
        return self.record

    def _calibrate(self, client: openai.OpenAI, progress: Progress) -> Pace:
        """Time the first window's first `_CALIBRATION_TASKS` tasks; size the held-out set
        for this machine (the trainer jobs are set up with it)."""
        self._agent_window(client, progress, _CALIBRATION_TASKS, ends_window=False)
        rollout_s = sum(self._rollout_seconds) / len(self._rollout_seconds)
        heldout = heldout_tasks(self.settings.heldout_tasks, rollout_s)
        self.jobs = self._local_jobs(heldout)
        self.console.print(
            f"pace: {rollout_s:.1f} s per rollout ({rollout_s / REFERENCE_ROLLOUT_S:.1f}x the "
            f"reference), torch on {self.threads} thread(s); the gate scores {heldout} "
            "held-out tasks"
        )
        return first_pace(rollout_s, heldout)

    def _measured(self, pace: Pace | None) -> Pace | None:
        """The pace the last round showed: its rollouts, its job."""
        if pace is None or not self._rollout_seconds:
            return pace
        recent = self._rollout_seconds[-_PACE_ROLLOUTS:]
        job = self.record.jobs[-1]
        return measured_pace(
            sum(recent) / len(recent),
            job.seconds,
            job.metrics.get("heldout_parent_seconds", 0.0),
            published=job.outcome == "published",
            before=pace,
        )

    def _next_window(
        self, remaining_s: float, longest: float, pace: Pace | None
    ) -> tuple[int, float] | None:
        """Tasks in the next window (those already run for it included) and the seconds it
        may take, or None when no round fits: with a pace, sized by `window_tasks` within
        its `window_seconds`; without, the settings' window, untimed, if the longest round
        so far still fits."""
        settings = self.settings
        if pace is None:
            return (settings.tasks_per_window, math.inf) if longest <= remaining_s else None
        rounds_left = max(1, MIN_VERSIONS - len(self.record.jobs))
        tasks = window_tasks(
            remaining_s, pace, rounds_left=rounds_left, attempts=settings.attempts_per_task,
            most=settings.tasks_per_window,
        )  # fmt: skip
        if tasks < min(MIN_TASKS, settings.tasks_per_window):
            return None
        self._window_episodes(tasks * settings.attempts_per_task)
        job_s = pace.job_s + pace.parent_eval_s
        self.console.print(
            f"next window: {tasks} tasks x {settings.attempts_per_task} attempts "
            f"({remaining_s / 60:.1f} min left, a job ≈ {job_s:.0f} s)"
        )
        return tasks, window_seconds(remaining_s, pace, rounds_left=rounds_left)

    def _window_episodes(self, episodes: int) -> None:
        """The scheduler starts a job once the window holds `episodes`."""
        self.scheduler_settings.window = self.scheduler_settings.window.model_copy(
            update={"every_episodes": episodes}
        )

    def _await_job(self, scheduler: Scheduler) -> None:
        """Tick until the window just sent has its job, for up to `_WINDOW_SEEN_S`: more
        traffic before it starts would land in the same version's next window. (One CI run
        saw a full window only after the next one; the cause was not found.)"""
        deadline = time.monotonic() + _WINDOW_SEEN_S
        while not self._job_running() and time.monotonic() < deadline:
            time.sleep(_TICK_S)
            scheduler.tick()
        if not self._job_running() and len(self.record.jobs) < self.settings.versions:
            self.console.print("[yellow]no trainer job for that window yet: more traffic[/]")

    def _job_running(self) -> bool:
        return any(status.phase == "active" for status in self.jobs.jobs())

    def _agent_window(
        self,
        client: openai.OpenAI,
        progress: Progress,
        tasks: int,
        *,
        until: float = math.inf,
        ends_window: bool = True,
    ) -> None:
        """The window's traffic up to its `tasks`-th task, each tried `attempts_per_task`
        times (a window the calibration began resumes where it stopped). Once `MIN_TASKS`
        ran, no task starts after `until` (monotonic seconds): the window ends there."""
        settings = self.settings
        cases = self.task.training(tasks, seed=self._batch)
        version = fulmen.resources().model_name or self.agent.DEFAULT_MODEL
        runs = [case for case in cases for _ in range(settings.attempts_per_task)]
        done = self._window_done
        bar = progress.add_task(f"agent on {version}", total=len(runs), completed=done)
        for i, case in enumerate(runs[done:], start=done):
            task_boundary = i % settings.attempts_per_task == 0
            enough = i >= MIN_TASKS * settings.attempts_per_task
            if task_boundary and enough and time.monotonic() >= until:
                self.console.print(
                    f"[yellow]the window's time is up after {i // settings.attempts_per_task} "
                    f"of {tasks} tasks[/]"
                )
                runs = runs[:i]
                self._window_episodes(len(runs))
                break
            started = time.monotonic()
            self.agent.solve(client, self.task, case, temperature=settings.temperature,
                  max_tokens=settings.max_tokens, seed=self._batch * 100_000 + i)  # fmt: skip
            self._rollout_seconds.append(time.monotonic() - started)
            self.runner.step()
            progress.advance(bar)
        self._window_done = len(runs)
        progress.remove_task(bar)
        if not ends_window:
            return
        self._window_done = 0
        rollouts = len(runs)
        fulmen.get_producer().flush(10)
        self.runner.finish()
        self._batch += 1
        [landed] = self.store.sql(  # each episode at its latest revision
            "SELECT count() AS n, countIf(NOT last_scored) AS unscored, "
            "avgIf(last_reward, last_scored) AS mean FROM (SELECT "
            "argMax(scored, revision) AS last_scored, argMax(reward, revision) AS last_reward "
            f"FROM {self.store.settings.database}.episodes "
            "WHERE agent_name = {agent:String} AND model_version = {v:String} "
            "GROUP BY rollout_id, attempt)",
            {"agent": settings.agent_name, "v": fulmen.resources().model_version or ""},
        ).to_pylist()
        mean = "—" if landed["mean"] is None else f"{landed['mean']:.2f}"
        unscored = f" ({landed['unscored']} unscored)" if landed["unscored"] else ""
        self.console.print(
            f"agent window {self._batch} on {version}: {rollouts} rollouts; "
            f"{landed['n']} episodes of this version in the store{unscored}, "
            f"mean reward {mean}"
        )

    def _on_event(self, event: SchedulerEvent) -> None:
        window = event.window
        if event.kind == "started":
            self._started[window.window_id] = time.monotonic()
            self.console.print(
                f"[green]trainer job[/] {window.job_name}: {window.target.algo} on "
                f"{window.episodes} episodes (log: {self.jobs.log(window)})"
            )
            return
        if event.kind not in ("succeeded", "failed", "lost"):
            return
        result = self.jobs.result(window) or {}
        outcome = str(result.get("outcome", "failed"))
        job = JobRecord(
            window_id=window.window_id, episodes=window.episodes, outcome=outcome,
            version=result.get("candidate_version") if outcome == "published" else None,
            metrics={k: float(v) for k, v in (result.get("metrics") or {}).items()},
            seconds=time.monotonic() - self._started.get(window.window_id, time.monotonic()),
            log=self.jobs.log(window),
        )  # fmt: skip
        self.record.jobs.append(job)
        if result.get("version"):
            self._swap(VersionEvent.model_validate(result["version"]))
        self.console.print(job_line(job, event.reason))

    def _swap(self, event: VersionEvent) -> None:
        """Start the job's version as a canary (or, with a share of 1, for every rollout)."""
        self.releases.publish(event)

    def _decide_release(self) -> None:
        """After a window: the rule's verdict on the canary, stored before the next job
        starts (it trains from the version in force)."""
        record = self.releases.decide()
        if record is None:
            return
        self.record.releases.append(record)
        self.runner.step()
        canary, parent = record.arms[0], record.arms[1]
        styles = {"promote": "bold green", "rollback": "bold red", "hold": "yellow"}
        self.console.print(
            f"[{styles[record.action]}]{record.action}[/] canary {record.version} "
            f"({canary.episodes} episodes, reward {canary.mean_reward:.2f}) against "
            f"{parent.version_id or 'base'} ({parent.episodes}, {parent.mean_reward:.2f}): "
            f"{record.reason}"
        )

    def _progress(self) -> Progress:
        return progress_for(
            self.console, TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), transient=True,
        )  # fmt: skip
