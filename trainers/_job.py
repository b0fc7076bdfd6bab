"""One trainer job, start to finish: snapshot the window, construct the algorithm, train,
gate against the parent on held-out tasks, and publish the candidate only if it passes.

This is what `fulmen train` and the Kubernetes Job run. Every decision is recorded in the
store (`training_runs`); only a passing candidate reaches the control topic. With several
processes (`torchrun`, a multi-pod Job) rank 0 reads the window and hands every rank the
same snapshot, all ranks train, and rank 0 alone gates, publishes and records; every rank
returns rank 0's result.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console

from fulmen.schemas import VersionEvent
from fulmen.store import LightningStore, WindowQuery
from fulmen.trainers._algorithm import EmptyWindow, JobContext
from fulmen.trainers._algorithms import load_algorithm
from fulmen.trainers._chat import EndpointError
from fulmen.trainers._distributed import SINGLE, Ranks, from_main
from fulmen.trainers._record import Outcome, TrainingRun, record_run
from fulmen.trainers._settings import TrainSettings
from fulmen.trainers._window import read_window

Publish = Callable[[VersionEvent], None]


@dataclass(frozen=True, slots=True)
class JobResult:
    run_id: str
    outcome: Outcome
    candidate_version: str
    parent_version: str | None
    window_id: str
    dataset_hash: str
    episodes: int
    metrics: dict[str, float]
    reason: str
    version: dict[str, object] | None
    """The published VersionEvent as JSON, when the gate passed."""


def run_job(
    settings: TrainSettings,
    *,
    store: LightningStore,
    publish: Publish,
    console: Console | None = None,
    ranks: Ranks = SINGLE,
) -> JobResult:
    """Run one job; returns its result, already recorded in the store. Every rank of a
    multi-process job calls it; `publish` and the store's writes happen on rank 0 only."""
    console = console or Console(stderr=True, quiet=not ranks.main)
    started = datetime.now(UTC)
    run_id = from_main(str(uuid.uuid4()), ranks)
    algorithm_class = load_algorithm(settings.algo)
    query = WindowQuery(
        agent_name=settings.agent_name,
        since=settings.since,
        until=settings.until,
        min_group_size=settings.min_group_size,
        include_unscored=algorithm_class.include_unscored,
    )
    window = (
        read_window(
            store,
            query,
            settings.snapshots_dir,
            window_id=settings.window_id,
            feedback=algorithm_class.uses_feedback,
        )
        if ranks.main
        else None
    )
    window = from_main(window, ranks)  # every rank trains on rank 0's snapshot
    assert window is not None
    short_name = settings.algo.rpartition(":")[2].lower()
    candidate = f"{short_name}-{window.window_id[:8]}-{run_id[:6]}"
    algorithm = algorithm_class(JobContext(settings, store, window, candidate, console, ranks))
    parent_version = algorithm.parent_version()
    if not ranks.main:
        if algorithm_class.distributed:
            with contextlib.suppress(EmptyWindow):  # rank 0 records it
                algorithm.train_and_gate()
        result: JobResult | None = from_main(None, ranks)
        assert result is not None
        return result
    console.print(
        f"[bold]{settings.algo}[/] on window {window.window_id} ({window.episodes} episodes, "
        f"{len(window.calls)} calls), parent {parent_version or 'base'}"
        + (f", {ranks.world_size} processes" if ranks.distributed else "")
    )

    def finish(outcome: Outcome, reason: str, metrics: dict[str, float]) -> JobResult:
        run = TrainingRun(
            run_id=run_id, agent_name=settings.agent_name or "", algorithm=settings.algo,
            window_id=window.window_id, dataset_hash=window.snapshot.sha256,
            episodes=window.episodes, parent_version=parent_version,
            candidate_version=candidate, outcome=outcome, reason=reason, metrics=metrics,
            started_at=started, finished_at=datetime.now(UTC),
        )  # fmt: skip
        record_run(store, run)
        return JobResult(
            run_id=run_id, outcome=outcome, candidate_version=candidate,
            parent_version=run.parent_version, window_id=window.window_id,
            dataset_hash=window.snapshot.sha256, episodes=window.episodes, metrics=metrics,
            reason=reason, version=None,
        )  # fmt: skip

    def decide() -> JobResult:
        try:
            gated = algorithm.train_and_gate()
        except (EmptyWindow, EndpointError) as exc:  # nothing to train on; an endpoint down
            return finish("failed", str(exc), {})
        console.print(gated.decision.reason)
        if not gated.decision.passed:
            return finish("gate_failed", gated.decision.reason, gated.metrics)
        event = gated.version().model_copy(update={"traffic_share": settings.canary_share})
        publish(event)
        result = finish("published", gated.decision.reason, gated.metrics)
        return _with_version(result, event)

    return from_main(decide(), ranks)


def _with_version(result: JobResult, event: VersionEvent) -> JobResult:
    return JobResult(**{**asdict(result), "version": json.loads(event.model_dump_json())})


def write_result(result: JobResult, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(result), indent=2))
