"""What the store says of each arm of a canary: one parameterized query over the latest
revision of each episode that finished since the canary started."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, assert_never

from fulmen.releases._rule import ArmStats
from fulmen.schemas import VersionKind
from fulmen.store import LightningStore

ERROR_STATUSES = ("failed", "timeout")
"""Episode statuses the error-rate guardrail counts."""


@dataclass(frozen=True)
class ArmQuery:
    """Which episodes make the arms: those of `target_agent` (every agent when None) that
    finished at or after `since_ns` (Unix nanoseconds), whose model version (`kind`
    "model") or prompt version ("prompt") is one of `versions`. An episode that several
    versions served (`v3+v4`) belongs to no arm."""

    target_agent: str | None
    kind: VersionKind
    since_ns: int
    versions: tuple[str, ...]


def _version_column(kind: VersionKind) -> Literal["model_version", "resources_version"]:
    match kind:
        case "model":
            return "model_version"
        case "prompt":
            return "resources_version"
        case _:
            assert_never(kind)


def arm_stats(store: LightningStore, query: ArmQuery) -> dict[str, ArmStats]:
    """Each of `query.versions` with its counts, reward sums, error count and mean duration
    and tokens (LLM usage of its spans: input plus output tokens); a version with no
    episode gets empty stats."""
    column = _version_column(query.kind)
    db = store.settings.database
    table = store.sql(
        f"""
        WITH arms AS (
            SELECT rollout_id, attempt, toString({column}) AS arm, toString(status) AS status,
                   scored, ifNull(reward, 0) AS reward,
                   dateDiff('microsecond', started_at, finished_at) / 1e6 AS duration_s
            FROM {db}.episodes
            WHERE finished_at >= fromUnixTimestamp64Nano({{since:Int64}}, 'UTC')
              AND {column} IN {{versions:Array(String)}}
              AND ({{agent:Nullable(String)}} IS NULL OR agent_name = {{agent:Nullable(String)}})
            ORDER BY revision DESC
            LIMIT 1 BY rollout_id, attempt
        ), usage AS (
            SELECT rollout_id, attempt,
                   sum(ifNull(llm_input_tokens, 0) + ifNull(llm_output_tokens, 0)) AS tokens
            FROM {db}.spans
            WHERE rollout_id IN (SELECT rollout_id FROM arms)
            GROUP BY rollout_id, attempt
        )
        SELECT arm, count() AS finished, countIf(scored) AS scored_episodes,
               sumIf(reward, scored) AS reward_sum,
               sumIf(reward * reward, scored) AS reward_sq_sum,
               countIf(status IN {{errors:Array(String)}}) AS errors,
               avg(duration_s) AS latency_mean_s, avg(ifNull(tokens, 0)) AS tokens_mean
        FROM arms LEFT JOIN usage USING (rollout_id, attempt)
        GROUP BY arm
        """,
        {
            "since": query.since_ns,
            "versions": list(query.versions),
            "agent": query.target_agent,
            "errors": list(ERROR_STATUSES),
        },
    )
    found = {
        row["arm"]: ArmStats(
            version_id=row["arm"],
            finished=int(row["finished"]),
            scored=int(row["scored_episodes"]),
            reward_sum=float(row["reward_sum"]),
            reward_sq_sum=float(row["reward_sq_sum"]),
            errors=int(row["errors"]),
            latency_mean_s=max(float(row["latency_mean_s"]), 0.0),
            tokens_mean=float(row["tokens_mean"]),
        )
        for row in table.to_pylist()
    }
    return {version: found.get(version, ArmStats(version)) for version in query.versions}
