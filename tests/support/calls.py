"""Scored episodes with logged LLM calls (token ids, behaviour logprobs) written straight into
the store, as the stream stage writes them: an RL window without an agent or a server."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import pyarrow as pa

from fulmen.store import TABLES, LightningStore
from tests.support.episodes import insert_episodes


def insert_scored_calls(
    store: LightningStore,
    agent: str,
    *,
    start: datetime,
    tasks: int,
    per_task: int,
    vocab: int,
    seed: int = 0,
) -> None:
    """`tasks` x `per_task` episodes of one LLM call each, finished a second apart from
    `start` (recent: the store's TTLs drop old rows), rewards 0 or 1 within every task (so
    group-relative advantages are nonzero). Deterministic: the same arguments write the
    same rows (rollout ids included), whatever the store."""
    rng = random.Random(seed)
    triplets = []
    for index in range(tasks * per_task):
        task, rollout = index // per_task, f"r-{seed}-{index:04d}"
        at = start + timedelta(seconds=index)
        reward = float((index + task) % 2)
        response = [rng.randrange(3, vocab) for _ in range(rng.randint(2, 8))]
        insert_episodes(store, agent, [at], reward=reward, rollout_ids=[rollout],
                        task_ids=[f"task-{task}"])  # fmt: skip
        triplets.append({
            "rollout_id": rollout, "attempt": 0, "revision": 0, "step": 0,
            "span_id": f"s-{index:04d}", "agent_name": agent, "task_id": f"task-{task}",
            "model_version": "", "resources_version": "", "finished_at": at,
            "request_model": "base", "prompt": "[]", "response": "",
            "prompt_token_ids": [rng.randrange(3, vocab) for _ in range(rng.randint(6, 24))],
            "response_token_ids": response,
            "response_logprobs": [-rng.uniform(0.1, 4.0) for _ in response],
            "reward": reward, "advantage": None,
        })  # fmt: skip
    store.insert("triplets", pa.Table.from_pylist(triplets, schema=TABLES["triplets"]))
