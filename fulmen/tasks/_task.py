"""The contract between a trainer and the agent it trains: the held-out tasks the gate
evaluates on, the messages the agent sends for each, and the agent's programmatic reward.

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


class AgentTask(ABC):
    """An agent's task family with a programmatic reward in [0, 1]."""

    name: str

    @abstractmethod
    def heldout(self, count: int) -> Sequence[TaskCase]:
        """`count` cases never used for training traffic (deterministic)."""

    @abstractmethod
    def training(self, count: int, *, seed: int) -> Sequence[TaskCase]:
        """`count` cases drawn for agent traffic, disjoint from `heldout`."""

    @abstractmethod
    def reward(self, task_id: str, completion: str) -> float:
        """The agent's reward for answering `task_id` with `completion`."""


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
