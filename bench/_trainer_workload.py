"""What the trainer bench trains on: synthetic logged LLM calls, one list per optimizer step,
shaped like agent traffic (uneven prompt and response lengths, group advantages)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fulmen.trainers._rl_loss import group_advantages
from fulmen.trainers._samples import Sample


@dataclass(frozen=True)
class Workload:
    """One optimizer step's logged calls: `groups` tasks x `group_size` calls each."""

    groups: int
    group_size: int
    prompt_median: int
    prompt_max: int
    response_median: int
    response_max: int
    max_tokens: int  # padded tokens per micro-batch, both arms
    overhead_tokens: int  # ours: what one more micro-batch costs (RLStepConfig)
    head_chunk_tokens: int
    warmup: int
    steps: int
    warmup_rows: int = 0  # samples in a warm-up step (0: all); full warm-ups cost minutes on CPU


# fmt: off
WORKLOADS = {
    # 2 shared cores: ~8 calls of ~50 + ~20 tokens a step keep the run at a few minutes
    "cpu": Workload(
        groups=2, group_size=4, prompt_median=40, prompt_max=192, response_median=14,
        response_max=64, max_tokens=1024, overhead_tokens=32, head_chunk_tokens=512,
        warmup=1, steps=2, warmup_rows=2,
    ),
    # one card: 64 calls a step, prompts ~0.5k (up to 4k), responses ~160 (up to 1.5k)
    "cuda": Workload(
        groups=8, group_size=8, prompt_median=512, prompt_max=4096, response_median=160,
        response_max=1536, max_tokens=16384, overhead_tokens=8192, head_chunk_tokens=2048,
        warmup=3, steps=12,
    ),
}
# fmt: on


def logged_steps(w: Workload, vocab: int, n_steps: int, seed: int = 0) -> list[list[Sample]]:
    """Synthetic logged LLM calls, one list per optimizer step.

    A task's calls share a system prompt + task (per-task length); each call adds a history of
    earlier turns and tool results of its own, so prompts within a group differ too. Lengths
    are log-normal with a long tail (capped), as in agent traffic. Behaviour logprobs look like
    a served model's (mostly near 0, a tail of surprising tokens); rewards are 0/1 per call.
    """
    rng = np.random.default_rng(seed)
    steps = []
    for _ in range(n_steps):
        samples, rewards, groups = [], [], []
        for g in range(w.groups):
            base = rng.lognormal(math.log(w.prompt_median * 0.6), 0.6)
            for _ in range(w.group_size):
                history = rng.lognormal(math.log(w.prompt_median * 0.4), 1.0) * rng.integers(0, 3)
                prompt = int(np.clip(base + history, 8, w.prompt_max))
                response = int(
                    np.clip(rng.lognormal(math.log(w.response_median), 0.9), 2, w.response_max)
                )
                behaviour = -rng.exponential(0.7, response)
                samples.append(
                    (rng.integers(0, vocab, prompt), rng.integers(0, vocab, response), behaviour)
                )
                rewards.append(float(rng.random() < 0.5))
                groups.append(f"task-{g}")
        advantages = group_advantages(rewards, groups)
        steps.append(
            [
                Sample(tuple(p.tolist()), tuple(r.tolist()), tuple(b.tolist()), a)
                for (p, r, b), a in zip(samples, advantages, strict=True)
            ]
        )
    return steps
