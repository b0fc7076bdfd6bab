"""The stream worker's web port binds where its settings say, and off loopback it answers
only requests with its bearer token: real `fulmen worker` processes."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.support.stack import Stack, wait_for

pytestmark = pytest.mark.integration


def _listening(port: int) -> set[str]:
    """The IPv4 addresses listening on TCP `port` (from /proc/net/tcp, state 0A)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if state == "0A" and int(hex_port, 16) == port:
            found.add(".".join(str(int(address[i : i + 2], 16)) for i in (6, 4, 2, 0)))
    return found


def _status(port: int, headers: dict[str, str]) -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


def test_the_default_web_port_is_on_loopback(stack: Stack) -> None:
    worker = stack.worker("web-default", "web_default")
    worker.start()
    try:
        wait_for(worker.answers, timeout_s=120, what="the worker's web server")
        assert _listening(worker.port) == {"127.0.0.1"}
    finally:
        worker.stop()


def test_off_loopback_the_web_port_needs_the_token(stack: Stack) -> None:
    worker = stack.worker("web-token", "web_token", web_host="0.0.0.0", web_token="t0ken")
    worker.start()
    try:
        wait_for(worker.answers, timeout_s=120, what="the worker's web server")
        assert _listening(worker.port) == {"0.0.0.0"}
        assert _status(worker.port, {}) == 401
        assert _status(worker.port, {"Authorization": "Bearer wrong"}) == 401
        assert _status(worker.port, {"Authorization": "Bearer t0ken"}) == 200
    finally:
        worker.stop()


def test_off_loopback_without_a_token_the_worker_does_not_start(stack: Stack) -> None:
    env = stack.worker("web-open", "web_open", web_host="0.0.0.0").env
    done = subprocess.run(
        [sys.executable, "-m", "fulmen.cli", "worker"],
        env=os.environ | env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "FULMEN_WORKER_WEB_TOKEN" in done.stderr
