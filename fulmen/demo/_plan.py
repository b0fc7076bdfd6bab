"""Sizing the demo to the machine it runs on: pure arithmetic on measured paces.

The demo times its first rollouts, then sizes every round (a window of agent traffic and the
trainer job on it) so that at least `MIN_VERSIONS` rounds fit the budget: a window of fewer
tasks and a smaller held-out set where the machine is slower than the reference, the
defaults where it is as fast. Before each later round it sizes again from what the last
round measured, and it starts no round that would not fit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

REFERENCE_ROLLOUT_S = 3.1
"""Seconds per rollout on the reference machine: SmolLM2-135M on 2 AVX2 cores, quiet."""
JOB_FIXED_S = 45.0
"""A trainer job's start-up and training on the reference machine, held-out gate aside."""
JOB_PER_HELDOUT_S = 0.8
"""The gate's seconds per held-out task and evaluation on the reference machine."""
MIN_TASKS = 6
"""Fewer tasks than this in a window teach too little to be worth a round."""
MIN_HELDOUT = 20
"""Fewer held-out tasks than this make the gate's comparison a coin toss."""
MIN_VERSIONS = 2
"""Rounds the budget is shared among before the first starts."""
REPORT_S = 30.0
"""Kept for the end: stopping the loop, the table, the plot."""


@dataclass(frozen=True, slots=True)
class Pace:
    """What a round costs here: seconds per rollout, and seconds of the next trainer job."""

    rollout_s: float
    job_s: float

    @property
    def slowdown(self) -> float:
        """How much slower than the reference machine this one runs (at least 1)."""
        return max(1.0, self.rollout_s / REFERENCE_ROLLOUT_S)


def first_pace(rollout_s: float, heldout: int) -> Pace:
    """The pace before any job ran: the job estimated from the reference, scaled by how
    much slower the rollouts are here, with both of the first job's gate evaluations."""
    slowdown = max(1.0, rollout_s / REFERENCE_ROLLOUT_S)
    return Pace(rollout_s, slowdown * (JOB_FIXED_S + 2 * JOB_PER_HELDOUT_S * heldout))


def heldout_tasks(wanted: int, rollout_s: float) -> int:
    """The held-out set for this machine: `wanted` shrunk by the slowdown, at least
    `MIN_HELDOUT` (never more than `wanted`)."""
    slowdown = max(1.0, rollout_s / REFERENCE_ROLLOUT_S)
    return min(wanted, max(MIN_HELDOUT, round(wanted / slowdown)))


def window_tasks(
    remaining_s: float, pace: Pace, *, rounds_left: int, attempts: int, most: int
) -> int:
    """Tasks for the next window so that `rounds_left` rounds fit in `remaining_s` (the
    report's time kept aside), at most `most`. Below `MIN_TASKS` the round should not
    start."""
    per_round = (remaining_s - REPORT_S) / max(1, rounds_left)
    tasks = math.floor((per_round - pace.job_s) / (pace.rollout_s * attempts))
    return max(0, min(most, tasks))
