"""The dashboard's questions to the store about versions, rewards over time and dead
letters: one function per view, parameterised SQL, typed rows out (times as `DateTime64(3)`,
UTC). Questions about rollouts are in `_rollout_queries.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fulmen.dashboard._filters import RewardQuery
from fulmen.dashboard._reader import StoreReader


@dataclass(frozen=True)
class VersionRow:
    """One publication of a version (a rollback is a later publication of the same id)."""

    version_id: str
    kind: str
    target_agent: str | None
    parent_version: str | None
    algorithm: str
    window_id: str | None
    dataset_hash: str | None
    artifact_uri: str | None
    model_name: str | None
    metrics: dict[str, float]
    recipe: dict[str, str]
    """How it was trained beyond its algorithm, e.g. `pairing` (the preference data's rule)."""
    prompt_names: list[str]
    published_at: datetime
    traffic_share: float
    """Below 1.0: published as a canary on that share of its target's rollouts."""


@dataclass(frozen=True)
class TrainingRunRow:
    """One trainer job that reached a decision: published, gate_failed or failed."""

    run_id: str
    agent_name: str
    algorithm: str
    window_id: str
    episodes: int
    parent_version: str | None
    candidate_version: str
    outcome: str
    reason: str | None
    metrics: dict[str, float]
    started_at: datetime
    finished_at: datetime


@dataclass(frozen=True)
class RewardPoint:
    """Mean reward of one agent's model version in one time bucket."""

    bucket: datetime
    agent_name: str
    model_version: str
    count: int
    mean: float


@dataclass(frozen=True)
class DeadLetterCount:
    """Dead letters of one input topic and problem, and the latest one's arrival."""

    topic: str
    problem: str
    count: int
    last_received_at: datetime


@dataclass(frozen=True)
class DeadLetterRow:
    """One dead letter: where it was read, why it was refused, how large it was."""

    received_at: datetime
    topic: str
    partition: int
    offset: int
    problem: str
    detail: str
    size_bytes: int


def versions(reader: StoreReader) -> list[VersionRow]:
    """Every publication of every version, oldest first."""
    rows = reader.rows(
        """
        SELECT version_id, toString(kind) AS kind, target_agent, parent_version,
               toString(algorithm) AS algorithm, window_id, dataset_hash, artifact_uri,
               model_name, metrics, recipe, mapKeys(prompt_templates) AS prompt_names,
               toDateTime64(published_at, 3, 'UTC') AS published_at, traffic_share
        FROM $db.versions
        ORDER BY published_at, version_id
        LIMIT 1 BY event_id
        """
    )
    return [
        VersionRow(**(row | {"metrics": dict(row["metrics"]), "recipe": dict(row["recipe"])}))
        for row in rows
    ]


def training_runs(reader: StoreReader, *, limit: int = 200) -> list[TrainingRunRow]:
    """The latest `limit` trainer jobs that reached a decision, newest first."""
    rows = reader.rows(
        """
        SELECT run_id, toString(agent_name) AS agent_name, toString(algorithm) AS algorithm,
               window_id, episodes, parent_version, candidate_version,
               toString(outcome) AS outcome, reason, metrics, started_at, finished_at
        FROM $db.training_runs
        ORDER BY started_at DESC, run_id
        LIMIT 1 BY run_id
        LIMIT {limit:UInt32}
        """,
        {"limit": limit},
    )
    return [TrainingRunRow(**(row | {"metrics": dict(row["metrics"])})) for row in rows]


def reward_names(reader: StoreReader) -> list[str]:
    """The reward names that have hourly aggregates, sorted."""
    rows = reader.rows(
        "SELECT DISTINCT toString(reward_name) AS name FROM $db.reward_hourly ORDER BY name"
    )
    return [str(row["name"]) for row in rows]


def reward_series(reader: StoreReader, query: RewardQuery) -> list[RewardPoint]:
    """Mean reward `query.name` per (agent, model version, time bucket) over the latest
    revision of each episode that has it, by the version(s) that served the episode's calls
    (a judge's late reward counts for the episode it scores, not for the judge's version);
    buckets by the episode's end, ordered."""
    parameters: dict[str, Any] = {"name": query.name}
    agent = ""
    if query.agent is not None:
        agent = "AND agent_name = {agent:String}"
        parameters["agent"] = query.agent
    hour = "toStartOfHour(toDateTime(finished_at, 'UTC'))"
    bucket = {"hour": hour, "day": f"toStartOfDay({hour})"}[query.bucket]
    rows = reader.rows(
        f"""
        SELECT toDateTime64({bucket}, 3, 'UTC') AS bucket,
               toString(agent_name) AS agent_name, toString(model_version) AS model_version,
               count() AS count, avg(rewards[{{name:String}}]) AS mean
        FROM $db.latest_episodes
        WHERE mapContains(rewards, {{name:String}}) {agent}
        GROUP BY bucket, agent_name, model_version
        ORDER BY bucket, agent_name, model_version
        """,
        parameters,
    )
    return [RewardPoint(**row) for row in rows]


def dead_letter_counts(reader: StoreReader) -> list[DeadLetterCount]:
    """Dead letters per input topic and problem, most first."""
    rows = reader.rows(
        """
        SELECT toString(topic) AS topic, toString(problem) AS problem, count() AS count,
               max(received_at) AS last_received_at
        FROM $db.dead_letters
        GROUP BY topic, problem
        ORDER BY count DESC, topic, problem
        """
    )
    return [DeadLetterCount(**row) for row in rows]


def recent_dead_letters(reader: StoreReader, *, limit: int = 20) -> list[DeadLetterRow]:
    """The latest `limit` dead letters, newest first."""
    rows = reader.rows(
        """
        SELECT received_at, toString(topic) AS topic, partition, offset,
               toString(problem) AS problem, detail, length(value) AS size_bytes
        FROM $db.dead_letters
        ORDER BY received_at DESC, topic, partition, offset DESC
        LIMIT {limit:UInt32}
        """,
        {"limit": limit},
    )
    return [DeadLetterRow(**row) for row in rows]
