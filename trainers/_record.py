"""Every job that reaches a decision leaves a row in the store's `training_runs` table,
so candidates that failed the gate or crashed are as visible as published versions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import pyarrow as pa

from fulmen.store import TABLES, LightningStore

Outcome = Literal["published", "gate_failed", "failed"]


@dataclass(frozen=True, slots=True)
class TrainingRun:
    run_id: str
    agent_name: str
    algorithm: str
    window_id: str
    dataset_hash: str
    episodes: int
    parent_version: str | None
    candidate_version: str
    outcome: Outcome
    reason: str | None
    metrics: dict[str, float]
    started_at: datetime
    finished_at: datetime


def record_run(store: LightningStore, run: TrainingRun) -> None:
    """Write `run` once (a retry of the same run id is deduplicated by the store)."""
    row = {name: [getattr(run, name)] for name in TABLES["training_runs"].names}
    row["metrics"] = [list(run.metrics.items())]
    store.insert(
        "training_runs",
        pa.Table.from_pydict(row, schema=TABLES["training_runs"]),
        dedup_token=f"training-run-{run.run_id}",
    )
