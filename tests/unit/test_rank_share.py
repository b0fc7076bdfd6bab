"""How a step's samples are dealt to the ranks of a multi-process job."""

from __future__ import annotations

import random

from fulmen.trainers import Ranks, Sample, rank_share


def _samples(n: int) -> list[Sample]:
    rng = random.Random(0)
    return [
        Sample((1,) * rng.randint(1, 50), (2,) * (k := rng.randint(1, 20)), (-0.5,) * k, 1.0)
        for _ in range(n)
    ]


def test_every_sample_lands_on_exactly_one_rank_in_order() -> None:
    samples = _samples(23)
    shares = [rank_share(samples, Ranks(r, 3, distributed=True)) for r in range(3)]
    assert sorted(map(id, (s for share in shares for s in share))) == sorted(map(id, samples))
    for share in shares:  # each rank keeps the step's order
        positions = [next(i for i, s in enumerate(samples) if s is x) for x in share]
        assert positions == sorted(positions)


def test_ranks_get_about_equal_tokens() -> None:
    samples = _samples(64)
    loads = [sum(s.num_tokens for s in rank_share(samples, Ranks(r, 4, distributed=True)))
             for r in range(4)]  # fmt: skip
    assert max(loads) - min(loads) <= max(s.num_tokens for s in samples)


def test_one_process_keeps_everything_and_few_samples_leave_ranks_idle() -> None:
    samples = _samples(2)
    assert rank_share(samples, Ranks()) == samples
    shares = [rank_share(samples, Ranks(r, 4, distributed=True)) for r in range(4)]
    assert [len(share) for share in shares].count(0) == 2
