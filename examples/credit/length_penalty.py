"""A custom credit assigner: the episode's final reward, less a penalty for every output
token a call spends beyond a budget (terse tool calls are what the calculator agent needs).

The stream stage loads it by import path, in the worker and in the embedded runner alike:

    FULMEN_WORKER_CREDIT=examples.credit.length_penalty:LengthPenalty fulmen worker

    EmbeddedRunner(bus, store, policy=AssemblyPolicy(
        credit=load_credit_assigner("examples.credit.length_penalty:LengthPenalty")))

The contract (`fulmen.streams.CreditAssigner`): `assign(calls, rewards)` gets the episode's
LLM-call spans in order and its rewards split by what they score, returns one float per
call, and is pure (a replayed episode must get the same credit). `name` is recorded with the
episode (`credit_assignment`) so trainers know what the triplets' rewards mean.
"""

from __future__ import annotations

from collections.abc import Sequence

from fulmen.schemas import Span
from fulmen.streams import CreditAssigner, EpisodeRewards


class LengthPenalty(CreditAssigner):
    """`final - penalty * max(0, output_tokens - budget)` per call, floored at 0."""

    def __init__(self, *, budget: int = 24, penalty: float = 0.02) -> None:
        self.budget = budget
        self.penalty = penalty
        self.name = f"length_penalty(budget={budget},penalty={penalty:g})"

    def assign(self, calls: Sequence[Span], rewards: EpisodeRewards) -> list[float]:
        credited = []
        for call in calls:
            spent = (call.llm.output_tokens if call.llm else None) or 0
            over = max(0, spent - self.budget)
            credited.append(max(0.0, rewards.final - self.penalty * over))
        return credited
