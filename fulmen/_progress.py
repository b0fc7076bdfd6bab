"""Progress a person sees in any output: bars on a terminal, lines in a log.

rich draws nothing while output is not a terminal (a pipe, a CI log, a trainer job's log
file) until the end, so a 30-minute stage looked like a hang. `progress_for` keeps rich's
bars on a terminal and prints plain lines elsewhere.
"""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.progress import Progress, ProgressColumn, TaskID


def progress_for(
    console: Console, *columns: str | ProgressColumn, transient: bool = False
) -> Progress:
    """rich's bars when `console` is a terminal, else a `LineProgress` on it."""
    if console.is_terminal:
        return Progress(*columns, console=console, transient=transient)
    return LineProgress(console=console)


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


class LineProgress(Progress):
    """Tracks tasks like rich's `Progress` but draws no bar: it prints a line when a task
    starts, at most every `every_s` while it advances (done of total, elapsed, and an
    estimate of what remains once rich has one), and when it completes."""

    def __init__(self, *, console: Console, every_s: float = 30.0) -> None:
        super().__init__(console=console, disable=True)
        self._line_console = console
        self._every_s = every_s
        self._printed: dict[TaskID, float] = {}

    def add_task(
        self,
        description: str,
        start: bool = True,
        total: float | None = 100.0,
        completed: int = 0,
        visible: bool = True,
        **fields: Any,
    ) -> TaskID:
        task_id = super().add_task(description, start, total, completed, visible, **fields)
        size = "" if total is None else f" ({total:g})"
        self._line_console.print(f"{description}{size}: started", soft_wrap=True)
        self._printed[task_id] = time.monotonic()
        return task_id

    def update(self, task_id: TaskID, **kwargs: Any) -> None:
        super().update(task_id, **kwargs)
        self._report(task_id)

    def advance(self, task_id: TaskID, advance: float = 1) -> None:
        super().advance(task_id, advance)
        self._report(task_id)

    def _report(self, task_id: TaskID) -> None:
        task = self._tasks[task_id]
        finished = task.total is not None and task.completed >= task.total
        printed = self._printed.get(task_id)
        if printed is None:  # its completion was printed already
            return
        if not finished and time.monotonic() - printed < self._every_s:
            return
        done = f"{task.completed:g}" + ("" if task.total is None else f"/{task.total:g}")
        line = f"{task.description}: {done}, {_duration(task.elapsed or 0.0)} elapsed"
        if finished:
            del self._printed[task_id]
            line += ", done"
        else:
            self._printed[task_id] = time.monotonic()
            if task.time_remaining is not None:
                line += f", about {_duration(task.time_remaining)} left"
        self._line_console.print(line, soft_wrap=True)
