"""Canary releases: a version starts on a share of its target's rollouts; the release
controller compares it with the version it would replace, from production rewards in the
store, and promotes it or rolls it back (docs/versions.md, "Canary releases").

    controller = ReleaseController(ReleaseSettings(), FulmenSettings(), store=store)
    controller.tick()   # one pass: read the control topic, decide each canary
"""

from fulmen.releases._controller import DecisionListener, ReleaseController
from fulmen.releases._decision import automatic_decision, canary_arms
from fulmen.releases._errors import ReleaseError
from fulmen.releases._evidence import ERROR_STATUSES, ArmQuery, arm_stats
from fulmen.releases._manual import rollback, rollback_decision
from fulmen.releases._rule import (
    ArmStats,
    Inconclusive,
    Interval,
    ReleaseRule,
    Verdict,
    VerdictCode,
    decide,
    half_width,
    mean_interval,
    traffic_share_after,
    tuned_rho,
)
from fulmen.releases._settings import ReleaseSettings
from fulmen.releases._topic import ControlView, control_reader

__all__ = [
    "ERROR_STATUSES",
    "ArmQuery",
    "ArmStats",
    "ControlView",
    "DecisionListener",
    "Inconclusive",
    "Interval",
    "ReleaseController",
    "ReleaseError",
    "ReleaseRule",
    "ReleaseSettings",
    "Verdict",
    "VerdictCode",
    "arm_stats",
    "automatic_decision",
    "canary_arms",
    "control_reader",
    "decide",
    "half_width",
    "mean_interval",
    "rollback",
    "rollback_decision",
    "traffic_share_after",
    "tuned_rho",
]
