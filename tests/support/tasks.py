"""A task a tiny random model can learn in seconds: reward 1 when the reply has a digit."""

from __future__ import annotations

from collections.abc import Sequence

from fulmen.tasks import AgentTask, TaskCase


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


class TwoTurnDigitTask(DigitTask):
    """The digit task over two turns: the first reply is answered by `ASK_AGAIN`, the second
    ends the episode and is scored."""

    name = "digits-twice"
    max_turns = 2
    ASK_AGAIN = "Count again."

    def tool_result(self, task_id: str, completions: Sequence[str]) -> str | None:
        return self.ASK_AGAIN if len(completions) < self.max_turns else None


CAPITALS_PROMPT = "Answer in CAPITAL LETTERS."


class CapitalsTask(AgentTask):
    """A task whose reward varies smoothly with a tiny model's nonsense, so the system prompt
    (which changes that nonsense) matters: the share of the reply's ASCII letters that are
    capitals (0 without letters)."""

    name = "capitals"

    def heldout(self, count: int) -> Sequence[TaskCase]:
        return [self._case(i, "heldout") for i in range(count)]

    def training(self, count: int, *, seed: int) -> Sequence[TaskCase]:
        return [self._case(seed * 1000 + i, "train") for i in range(count)]

    def reward(self, task_id: str, completion: str) -> float:
        letters = [ch for ch in completion if ch.isascii() and ch.isalpha()]
        return sum(ch.isupper() for ch in letters) / len(letters) if letters else 0.0

    @staticmethod
    def _case(index: int, split: str) -> TaskCase:
        return TaskCase(
            task_id=f"{split}-{index}",
            messages=(
                {"role": "system", "content": CAPITALS_PROMPT},
                {"role": "user", "content": f"Describe fruit {index}."},
            ),
        )
