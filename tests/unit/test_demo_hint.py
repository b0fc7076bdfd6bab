"""The demo's closing hint is a command that runs as printed, on one unwrapped line."""

from __future__ import annotations

import io
import shlex
import subprocess
from pathlib import Path

from rich.console import Console

from fulmen.demo._report import show_browse_hint

ROOT = Path(__file__).resolve().parents[2]


def _printed(store: Path, *, width: int) -> list[str]:
    out = io.StringIO()
    show_browse_hint(Console(file=out, width=width, color_system=None), store)
    return out.getvalue().splitlines()


def test_the_command_is_one_line_even_on_a_narrow_terminal() -> None:
    lines = _printed(Path(".fulmen/demo/store"), width=30)
    assert "  FULMEN_STORE__PATH=.fulmen/demo/store make dashboard" in lines


def test_a_path_with_spaces_and_brackets_is_quoted_and_kept() -> None:
    store = Path("/tmp/my demo [1]/store")
    (command,) = [line for line in _printed(store, width=40) if "make dashboard" in line]
    assert shlex.split(command) == [f"FULMEN_STORE__PATH={store}", "make", "dashboard"]


def test_make_dashboard_runs_the_dashboard_from_the_environments_store() -> None:
    # `make dashboard` exists and runs `fulmen dashboard` (through uv, from .venv), which
    # reads FULMEN_STORE__PATH like every command.
    planned = subprocess.run(
        ["make", "-n", "dashboard"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert "run --frozen fulmen dashboard" in planned
