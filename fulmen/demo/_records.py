"""What the demo's loop records as it runs: each trainer job as it ended and each canary's
fate (`LoopRecord`, which `_report.py` summarizes), and the console line a job's end prints.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fulmen.demo._canary import ReleaseRecord


@dataclass
class JobRecord:
    """One trainer job as the demo saw it end."""

    window_id: str
    episodes: int
    outcome: str
    """`published`, `gate_failed` or `failed` (the job's own word when it wrote a result)."""
    version: str | None
    metrics: dict[str, float]
    seconds: float
    log: Path


@dataclass
class LoopRecord:
    """What the loop did: its jobs in order, and the store it filled (still served)."""

    jobs: list[JobRecord] = field(default_factory=list)
    releases: list[ReleaseRecord] = field(default_factory=list)
    """Each canary's fate, in order."""
    wall_s: float = 0.0


def job_line(job: JobRecord, reason: str | None) -> str:
    """The console line for `job`'s end: its outcome, how long it took, the version it
    published (else the first line of the scheduler's `reason`) and its held-out scores."""
    before, after = job.metrics.get("heldout_reward_parent"), job.metrics.get("heldout_reward")
    scores = f"held-out {before:.2f} → {after:.2f}" if before is not None and after else ""
    styles = {"published": "bold green", "gate_failed": "yellow"}
    what = f"version {job.version}" if job.version else (reason or "").splitlines()[0][:120]
    return (
        f"[{styles.get(job.outcome, 'red')}]{job.outcome}[/] in {job.seconds:.0f} s: "
        f"{what} {scores}"
    )
