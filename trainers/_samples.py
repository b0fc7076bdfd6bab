"""What the RL step consumes: one logged LLM call, already scored."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Sample:
    """One logged LLM call as the policy-gradient step sees it.

    `prompt_ids` is everything the model was conditioned on (at least one token);
    `response_ids` is what it sampled (at least one token), and `behaviour_logprobs[i]` is
    the serving engine's log-probability of `response_ids[i]` (raw log_softmax at T=1, so
    each is finite and ≤ 0). `advantage` is the scalar credit every response token gets
    (e.g. from `group_advantages`).
    """

    prompt_ids: tuple[int, ...]
    response_ids: tuple[int, ...]
    behaviour_logprobs: tuple[float, ...]
    advantage: float

    def __post_init__(self) -> None:
        if not self.prompt_ids:
            raise ValueError("Sample.prompt_ids is empty: the first response token needs a context")
        if not self.response_ids:
            raise ValueError("Sample.response_ids is empty: nothing to train on")
        if len(self.behaviour_logprobs) != len(self.response_ids):
            raise ValueError(
                f"Sample has {len(self.response_ids)} response tokens but "
                f"{len(self.behaviour_logprobs)} behaviour logprobs; they must pair one to one"
            )
        if not all(math.isfinite(lp) and lp <= 0.0 for lp in self.behaviour_logprobs):
            raise ValueError("Sample.behaviour_logprobs must be finite log-probabilities (≤ 0)")
        if not math.isfinite(self.advantage):
            raise ValueError(f"Sample.advantage must be finite, got {self.advantage}")

    @property
    def num_tokens(self) -> int:
        """Tokens the model reads for this sample: prompt plus response."""
        return len(self.prompt_ids) + len(self.response_ids)
