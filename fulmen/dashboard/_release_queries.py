"""The dashboard's questions to the store about releases: the decisions on canaries with
their evidence per arm (`release_decisions`), and which serving replicas loaded each model
version (`serving_acks`). Parameterised SQL, typed rows out, times as `DateTime64(3)` UTC.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fulmen.dashboard._reader import StoreReader
from fulmen.schemas import ReleaseAction, ServingStatus, VersionKind


@dataclass(frozen=True)
class ArmRow:
    """What production said of one arm of a canary when the decision was taken. The
    reward interval's ends may be infinite (too few episodes to bound the mean)."""

    version_id: str
    episodes: int
    mean_reward: float
    reward_lower: float
    reward_upper: float
    error_rate: float
    latency_mean_s: float
    tokens_mean: float


@dataclass(frozen=True)
class DecisionRow:
    """One release decision on the canary `version_id`; `arms` the canary first, then the
    version it was compared with."""

    decided_at: datetime
    target_agent: str | None
    kind: VersionKind
    version_id: str
    to_version: str | None
    """What the target ran afterwards (None: the base deployment; None on hold)."""
    action: ReleaseAction
    traffic_share: float
    automatic: bool
    reason: str
    rule: str
    arms: list[ArmRow]


@dataclass(frozen=True)
class ReplicaState:
    """A serving replica's latest acknowledgement of one model version."""

    version_id: str
    model_name: str
    pool: str
    replica_id: str
    status: ServingStatus
    detail: str | None
    last_acked_at: datetime


def release_decisions(reader: StoreReader, *, limit: int = 500) -> list[DecisionRow]:
    """The latest `limit` release decisions, oldest first (a replayed one once)."""
    rows = reader.rows(
        """
        SELECT toDateTime64(decided_ns, 3, 'UTC') AS decided_at, target_agent,
               toString(kind) AS kind, version_id, to_version, toString(action) AS action,
               traffic_share, automatic, reason, rule, arms
        FROM (
            SELECT decided_at AS decided_ns, event_id, target_agent, kind, version_id,
                   to_version, action, traffic_share, automatic, reason, rule, arms
            FROM $db.release_decisions
            ORDER BY decided_ns DESC, event_id DESC
            LIMIT 1 BY event_id
            LIMIT {limit:UInt32}
        )
        ORDER BY decided_ns, event_id
        """,
        {"limit": limit},
    )
    return [_decision(row) for row in rows]


def _decision(row: dict[str, Any]) -> DecisionRow:
    arms = [ArmRow(**arm) for arm in row["arms"]]
    return DecisionRow(**(row | {"arms": arms}))


def serving_states(reader: StoreReader) -> list[ReplicaState]:
    """Each replica's latest acknowledgement of each model version it acknowledged, by
    version, pool and replica."""
    rows = reader.rows(
        """
        SELECT version_id, model_name, toString(pool) AS pool,
               toString(replica_id) AS replica_id,
               argMax(toString(status), acked_at) AS status,
               argMax(detail, acked_at) AS detail,
               toDateTime64(max(acked_at), 3, 'UTC') AS last_acked_at
        FROM $db.serving_acks
        GROUP BY version_id, model_name, pool, replica_id
        ORDER BY version_id, model_name, pool, replica_id
        """
    )
    return [ReplicaState(**row) for row in rows]


OUTCOMES: dict[ReleaseAction, str] = {
    "promote": "promoted",
    "hold": "held",
    "rollback": "rolled back",
}
"""How a canary's latest decision reads beside the version."""


def arm_role(index: int) -> str:
    """What the arm at `index` of a decision's evidence is: the canary, then its baseline."""
    return "canary" if index == 0 else "baseline"


def latest_actions(decisions: Sequence[DecisionRow]) -> dict[str, ReleaseAction]:
    """The latest decision's action on each canary, from `decisions` oldest first."""
    return {decision.version_id: decision.action for decision in decisions}
