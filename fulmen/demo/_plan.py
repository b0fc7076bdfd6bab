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
JOB_FIXED_S = 70.0
"""A trainer job's start-up, training and saving on the reference machine, gate aside."""
JOB_PER_HELDOUT_S = 0.8
"""The gate's seconds per held-out task and evaluation on the reference machine."""
MARGIN = 1.2
"""Job estimates are inflated by this much: a busy machine slows trainer jobs more than the
rollouts that timed it, and a better version's window gives more examples to train on than
the last one did."""
MIN_TASKS = 4
"""Fewer tasks than this in a window teach too little to be worth a round."""
MIN_HELDOUT = 20
"""Fewer held-out tasks than this make the gate's comparison a coin toss."""
MIN_VERSIONS = 2
"""Rounds the budget is shared among before the first starts."""
REPORT_S = 30.0
"""Kept for the end: stopping the loop, the table, the plot."""


@dataclass(frozen=True, slots=True)
class Pace:
    """What a round costs here: seconds per rollout; seconds of a trainer job that reuses
    its parent's held-out score; and the seconds the next job adds when it must score its
    parent (the base, or a parent whose job failed the gate), else 0."""

    rollout_s: float
    job_s: float
    parent_eval_s: float = 0.0

    @property
    def slowdown(self) -> float:
        """How much slower than the reference machine this one runs (at least 1)."""
        return max(1.0, self.rollout_s / REFERENCE_ROLLOUT_S)


def first_pace(rollout_s: float, heldout: int) -> Pace:
    """The pace before any job ran: the job estimated from the reference, scaled by how
    much slower the rollouts are here; the first job scores the base as well."""
    scale = max(1.0, rollout_s / REFERENCE_ROLLOUT_S)
    evaluation = scale * JOB_PER_HELDOUT_S * heldout
    return Pace(rollout_s, scale * JOB_FIXED_S + evaluation, evaluation)


def measured_pace(
    rollout_s: float, job_s: float, parent_eval_s: float, *, published: bool, before: Pace
) -> Pace:
    """The pace after a job that ran `job_s`, of which `parent_eval_s` scoring its parent:
    the next job reuses the new version's score when this one published, else it scores
    the same parent again."""
    reused_job = job_s - parent_eval_s
    if published:
        return Pace(rollout_s, reused_job, 0.0)
    return Pace(rollout_s, reused_job, parent_eval_s or before.parent_eval_s)


def heldout_tasks(wanted: int, rollout_s: float) -> int:
    """The held-out set for this machine: `wanted` shrunk by the slowdown, at least
    `MIN_HELDOUT` (never more than `wanted`)."""
    slowdown = max(1.0, rollout_s / REFERENCE_ROLLOUT_S)
    return min(wanted, max(MIN_HELDOUT, round(wanted / slowdown)))


def window_seconds(remaining_s: float, pace: Pace, *, rounds_left: int) -> float:
    """The next window's share of `remaining_s`: what is left once the jobs of
    `rounds_left` rounds (with `MARGIN`) and the report are set aside, split among their
    windows. A window
    whose rollouts turn out slower than the pace (a trained version answers in more calls)
    stops at its share, so no round overruns its part of the budget."""
    rounds = max(1, rounds_left)
    jobs_s = MARGIN * (rounds * pace.job_s + pace.parent_eval_s)
    return (remaining_s - REPORT_S - jobs_s) / rounds


def window_tasks(
    remaining_s: float, pace: Pace, *, rounds_left: int, attempts: int, most: int
) -> int:
    """Tasks for the next window so that `rounds_left` rounds, their jobs and the report
    fit in `remaining_s`, at most `most`. Below `MIN_TASKS` the round should not start."""
    share = window_seconds(remaining_s, pace, rounds_left=rounds_left)
    tasks = math.floor(share / (pace.rollout_s * attempts))
    return max(0, min(most, tasks))
