"""Episodes written straight into the store, as the stream stage writes them: scored, or
unscored (no reward) with `reward=None`."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

import pyarrow as pa

from fulmen.store import TABLES, LightningStore


def insert_episodes(
    store: LightningStore,
    agent: str,
    finished: Sequence[datetime],
    *,
    reward: float | None = 1.0,
    rollout_ids: Sequence[str] | None = None,
    task_ids: Sequence[str] | None = None,
) -> list[str]:
    """One finished episode per time in `finished` (revision 0); returns the rollout ids
    (`rollout_ids`, else random ones). Tasks: `task_ids`, else `task-0` to `task-2` in turn."""
    ids = (
        list(rollout_ids)
        if rollout_ids is not None
        else [f"r-{uuid.uuid4().hex[:12]}" for _ in finished]
    )
    tasks = list(task_ids) if task_ids is not None else [f"task-{i % 3}" for i in range(len(ids))]
    rows = [
        {
            "rollout_id": rollout_id,
            "attempt": 0,
            "revision": 0,
            "agent_name": agent,
            "task_id": tasks[index],
            "model_version": "",
            "resources_version": "",
            "status": "succeeded",
            "scored": reward is not None,
            "reward": reward,
            "rewards": {} if reward is None else {"reward": reward},
            "credit_assignment": "final",
            "started_at": at,
            "finished_at": at,
            "assembled_at": at,
            "num_spans": 2,
            "num_llm_calls": 1,
            "num_tool_calls": 0,
            "num_tool_errors": 0,
            "input": None,
            "error": None,
            "num_events": 3,
        }
        for index, (rollout_id, at) in enumerate(zip(ids, finished, strict=True))
    ]
    store.insert("episodes", pa.Table.from_pylist(rows, schema=TABLES["episodes"]))
    return ids
