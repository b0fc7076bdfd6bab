"""The contract between a trainer and the agent it trains: the held-out tasks the gate
evaluates on, the messages the agent sends for each, the tool results a multi-turn task
answers with, and the agent's programmatic reward.

A trainer never runs the agent's code; it replays the agent's prompt for a task against a
candidate policy and scores the completion the way the agent would. It lives here, light
(no torch), so that agents import it without the training stack; `fulmen.trainers`
exports it too.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

from fulmen._import_path import import_attribute
from fulmen.errors import FulmenError


class TaskLoadError(FulmenError):
    """An `--task module:attribute` path that does not name an `AgentTask`."""


@dataclass(frozen=True, slots=True)
class TaskCase:
    """One task instance: its id (the `task_id` the agent's episodes carry) and the chat
    messages the agent sends the model for it, system prompt included."""

    task_id: str
    messages: tuple[dict[str, str], ...]


def conversation(
    case: TaskCase, completions: Sequence[str], results: Sequence[str]
) -> tuple[dict[str, str], ...]:
    """The chat after the model's `completions` and the tool `results` that answered
    them, each result a user turn: what the agent sends for its next turn."""
    turns: list[dict[str, str]] = []
    for completion, result in zip(completions, results, strict=False):
        turns += [{"role": "assistant", "content": completion}, {"role": "user", "content": result}]
    return (*case.messages, *turns)


class AgentTask(ABC):
    """An agent's task family with a programmatic reward in [0, 1].

    A single-turn task (the default) is one model reply per case. A multi-turn task sets
    `max_turns` and answers each reply with `tool_result`: the text the agent sends back as
    the next user turn, or None when the reply ends the episode. `reward` scores the last
    reply; `step_rewards` scores every reply on its own (a correct tool call), for
    per-step credit."""

    name: str
    max_turns: int = 1

    @abstractmethod
    def heldout(self, count: int) -> Sequence[TaskCase]:
        """`count` cases never used for training traffic (deterministic)."""

    @abstractmethod
    def training(self, count: int, *, seed: int) -> Sequence[TaskCase]:
        """`count` cases drawn for agent traffic, disjoint from `heldout`."""

    @abstractmethod
    def reward(self, task_id: str, completion: str) -> float:
        """The agent's reward for ending `task_id`'s episode with `completion`."""

    def tool_result(self, task_id: str, completions: Sequence[str]) -> str | None:
        """The tool's answer to the last of `completions` (the episode's replies so far),
        or None when that reply ends the episode. Single-turn tasks end after one."""
        del task_id, completions
        return None

    def step_rewards(self, task_id: str, completions: Sequence[str]) -> list[float]:
        """One reward per reply of a finished episode, each for that step alone. By
        default the last reply gets the episode's reward and earlier ones 0."""
        if not completions:
            return []
        return [0.0] * (len(completions) - 1) + [self.reward(task_id, completions[-1])]


def load_task(path: str) -> AgentTask:
    """Import `module:attribute`, which must be an `AgentTask` instance or a class or
    factory returning one when called without arguments."""
    try:
        target = import_attribute(path)
    except ValueError:
        raise TaskLoadError(f"task path {path!r} is not of the form module:attribute") from None
    except ImportError as exc:
        raise TaskLoadError(f"cannot import task {path!r}: {exc}") from exc
    task = target() if callable(target) and not isinstance(target, AgentTask) else target
    if not isinstance(task, AgentTask):
        raise TaskLoadError(f"{path!r} is {type(task).__name__}, not an AgentTask")
    return task
