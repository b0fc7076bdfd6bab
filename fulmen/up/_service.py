"""A service of the local stack, as the supervisor sees it: something that starts, says
when it is ready, may die, and stops when asked."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

from fulmen.errors import FulmenError

_TAIL_LINES = 30


class UpError(FulmenError):
    """The stack could not be started or kept up."""


class ServiceFailed(UpError):
    """A service exited, or did not become ready in time; `tail` is the end of its log."""

    def __init__(self, name: str, reason: str, tail: str) -> None:
        super().__init__(f"{name}: {reason}")
        self.name, self.reason, self.tail = name, reason, tail


class Service(ABC):
    """One part of the stack. `address` (empty when it has none) and `log` are shown to
    the user; everything the service prints goes to `log`."""

    def __init__(self, name: str, *, log: Path, address: str = "") -> None:
        self.name, self.log, self.address = name, log, address

    @abstractmethod
    def start(self) -> None:
        """Launch it; returns without waiting for readiness (`ready()` says)."""

    @property
    @abstractmethod
    def pid(self) -> int | None:
        """Its process id while it runs."""

    @abstractmethod
    def exit_code(self) -> int | None:
        """None while it runs (or before `start`, or after `stop`); its exit code once it
        died on its own."""

    @abstractmethod
    def ready(self) -> bool:
        """Whether it serves (its port answers, its API replies)."""

    @abstractmethod
    def stop(self, timeout_s: float) -> None:
        """Stop it and whatever it started: SIGTERM, then SIGKILL after `timeout_s`.
        Idempotent."""

    finishes: bool = False
    """Whether exiting with code 0 is a normal end (an agent with a bounded number of
    rollouts) rather than a failure of the stack."""

    def tail(self, lines: int = _TAIL_LINES) -> str:
        """The last `lines` lines of its log."""
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])
