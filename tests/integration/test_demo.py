"""`fulmen demo` runs on a fresh directory and fills the store."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "fulmen.cli", "demo", "--rollouts", "12"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "12 episodes assembled" in done.stdout
    assert (tmp_path / ".fulmen" / "demo" / "store").is_dir()
