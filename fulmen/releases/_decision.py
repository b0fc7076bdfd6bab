"""One canary's evidence and the automatic decision built from a verdict on it: what the
release controller does on every pass, and `fulmen demo` after each window."""

from __future__ import annotations

from collections.abc import Sequence

from fulmen.producers import Canary, version_meta
from fulmen.releases._evidence import ArmQuery, arm_stats
from fulmen.releases._rule import ArmStats, ReleaseRule, traffic_share_after
from fulmen.schemas import ArmEvidence, ReleaseAction, ReleaseDecision
from fulmen.store import LightningStore


def canary_arms(
    store: LightningStore, canary: Canary, *, base_version: str
) -> tuple[ArmStats, ArmStats]:
    """The canary's arm and its parent's (`base_version` when no version was in force),
    over the episodes finished since the canary started."""
    version_id = canary.event.version_id
    parent_id = canary.parent.version_id if canary.parent is not None else base_version
    query = ArmQuery(canary.target_agent, canary.kind, canary.since_ns, (version_id, parent_id))
    stats = arm_stats(store, query)
    return stats[version_id], stats[parent_id]


def automatic_decision(
    canary: Canary,
    action: ReleaseAction,
    reason: str,
    arms: Sequence[ArmEvidence],
    rule: ReleaseRule,
) -> ReleaseDecision:
    """`action` on `canary` as the controller publishes it: the target runs the canary
    after a promote, its parent (None: the base deployment) after a rollback."""
    to_version = {
        "promote": canary.event.version_id,
        "rollback": canary.parent.version_id if canary.parent is not None else None,
        "hold": None,
    }[action]
    return ReleaseDecision(
        meta=version_meta(),
        target_agent=canary.target_agent,
        kind=canary.kind,
        version_id=canary.event.version_id,
        to_version=to_version,
        action=action,
        traffic_share=traffic_share_after(action, canary.event.traffic_share),
        automatic=True,
        reason=reason,
        rule=rule.describe(),
        arms=list(arms),
    )
