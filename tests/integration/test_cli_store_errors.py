"""A store owned by `fulmen store serve`: other commands say so in one line, with the fix."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
FULMEN = [sys.executable, "-m", "fulmen.cli"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """A `fulmen store serve` process owning a store: (its path, its URL)."""
    path = tmp_path_factory.mktemp("served") / "store"
    port = _free_port()
    env = os.environ | {"FULMEN_STORE__PATH": str(path), "FULMEN_STORE__PASSWORD": "w-secret"}
    server = subprocess.Popen(
        [*FULMEN, "store", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()  # printed once it listens
        assert f"127.0.0.1:{port}" in line, line
        yield path, f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=30)


def _fulmen(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FULMEN_")}
    return subprocess.run(
        [*FULMEN, *args], env=clean | env, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.parametrize(
    "command",
    [
        ["sql", "SELECT 1"],
        ["store", "migrate"],
        ["store", "serve", "--port", "0"],
        ["dashboard", "--port", "0"],
        ["train"],
        ["scheduler", "--once", "--executor", "local"],
    ],
)
def test_a_command_on_a_served_store_path_says_where_it_is_served(
    served: tuple[Path, str], command: list[str]
) -> None:
    path, _ = served
    done = _fulmen(
        {"FULMEN_STORE__PATH": str(path), "FULMEN_STORE__PASSWORD": "w-secret"}, *command
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == (
        f"error: the store at {path} is open in another process (`fulmen store serve`, or "
        "another fulmen command using it embedded): set FULMEN_STORE__URL to that server "
        "(http://127.0.0.1:8123 by default), or stop the other process"
    )


def test_the_fix_works_and_a_wrong_password_is_one_line(served: tuple[Path, str]) -> None:
    _, url = served
    done = _fulmen(
        {"FULMEN_STORE__URL": url, "FULMEN_STORE__PASSWORD": "w-secret"}, "sql", "SELECT 41 + 1"
    )
    assert done.returncode == 0, done.stderr
    assert "42" in done.stdout
    wrong = _fulmen({"FULMEN_STORE__URL": url, "FULMEN_STORE__PASSWORD": "nope"}, "sql", "SELECT 1")
    assert wrong.returncode == 2
    assert wrong.stderr.strip() == (
        f"error: the store server at {url} refused user 'default': set FULMEN_STORE__USERNAME "
        "and FULMEN_STORE__PASSWORD to one of its users"
    )


def test_a_query_error_is_still_the_servers_message(served: tuple[Path, str]) -> None:
    _, url = served
    done = _fulmen(
        {"FULMEN_STORE__URL": url, "FULMEN_STORE__PASSWORD": "w-secret"}, "sql", "SELECT nope"
    )
    assert done.returncode == 1
    assert "UNKNOWN_IDENTIFIER" in done.stderr
