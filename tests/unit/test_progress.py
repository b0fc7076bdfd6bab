"""Progress in a log: lines where rich would draw bars on a terminal."""

from __future__ import annotations

import io

from rich.console import Console
from rich.progress import Progress

from fulmen._progress import LineProgress, progress_for


def _console(*, terminal: bool) -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=terminal, width=60), out


def test_a_terminal_gets_bars_and_a_log_gets_lines() -> None:
    terminal, _ = _console(terminal=True)
    log, _ = _console(terminal=False)
    assert not isinstance(progress_for(terminal), LineProgress)
    assert isinstance(progress_for(log), LineProgress)
    assert isinstance(progress_for(log), Progress)


def test_lines_say_start_progress_and_end_without_wrapping() -> None:
    console, out = _console(terminal=False)
    description = "agent on smollm2-calculator-base with a long name"
    with LineProgress(console=console, every_s=0.0) as progress:
        task = progress.add_task(description, total=4)
        progress.advance(task)
        progress.update(task, completed=4)
        progress.advance(task)  # past its end: nothing more
    lines = out.getvalue().splitlines()
    assert lines[0] == f"{description} (4): started"
    assert lines[1].startswith(f"{description}: 1/4, ")
    assert "elapsed" in lines[1]
    assert lines[2].startswith(f"{description}: 4/4, ")
    assert lines[2].endswith(", done")
    assert len(lines) == 3


def test_lines_come_at_most_every_interval() -> None:
    console, out = _console(terminal=False)
    with LineProgress(console=console, every_s=3600.0) as progress:
        task = progress.add_task("training (sft)", total=None)
        for step in range(50):
            progress.update(task, completed=step, total=100)
        progress.update(task, completed=100)
    assert [line.split(":")[1].strip()[:3] for line in out.getvalue().splitlines()] == [
        "sta",
        "100",
    ]
