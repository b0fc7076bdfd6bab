"""A task a tiny random model can learn in seconds: reward 1 when the reply has a digit."""

from __future__ import annotations

from collections.abc import Sequence

from fulmen.trainers import AgentTask, TaskCase


def _case(index: int, split: str) -> TaskCase:
    return TaskCase(
        task_id=f"{split}-{index}",
        messages=(
            {"role": "system", "content": "Answer with a number."},
            {"role": "user", "content": f"How many apples are in basket {index}?"},
        ),
    )


class DigitTask(AgentTask):
    name = "digits"

    def heldout(self, count: int) -> Sequence[TaskCase]:
        return [_case(i, "heldout") for i in range(count)]

    def training(self, count: int, *, seed: int) -> Sequence[TaskCase]:
        return [_case(seed * 1000 + i, "train") for i in range(count)]

    def reward(self, task_id: str, completion: str) -> float:
        return 1.0 if any(ch.isdigit() for ch in completion) else 0.0
