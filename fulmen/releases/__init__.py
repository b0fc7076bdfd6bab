"""Canary releases: a version starts on a share of its target's rollouts; the release
controller compares it with the version it would replace, from production rewards in the
store, and promotes it or rolls it back (docs/versions.md, "Canary releases").

    controller = ReleaseController(ReleaseSettings(), FulmenSettings(), store=store)
    controller.tick()   # one pass: read the control topic, decide each canary
"""

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

__all__ = [
    "ArmStats",
    "Inconclusive",
    "Interval",
    "ReleaseRule",
    "Verdict",
    "VerdictCode",
    "decide",
    "half_width",
    "mean_interval",
    "traffic_share_after",
    "tuned_rho",
]
