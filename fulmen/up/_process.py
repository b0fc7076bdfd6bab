"""A service that is a command: its own process group, its output in its log."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO

import httpx

from fulmen.up._service import Service

Probe = Callable[[], bool]


def http_probe(url: str) -> Probe:
    """Ready when a GET of `url` answers 2xx."""

    def probe() -> bool:
        try:
            return httpx.get(url, timeout=2.0).is_success
        except httpx.HTTPError:
            return False

    return probe


def group_alive(pgid: int) -> bool:
    """Whether a live (not zombie) process is in process group `pgid`. Zombies count as
    gone: an orphan's is reaped by whoever adopted it, which may be slow to do so."""
    if not Path("/proc/self/stat").exists():  # no procfs: ask the kernel, zombies included
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        return True
    for path in Path("/proc").glob("[0-9]*/stat"):
        try:
            stat = path.read_text()
        except OSError:  # it ended meanwhile
            continue
        state, _ppid, pgrp = stat.rsplit(")", 1)[1].split()[:3]
        if int(pgrp) == pgid and state != "Z":
            return True
    return False


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


class ProcessService(Service):
    """`command` with exactly `env`, in `cwd` (default: this one), stdin closed, stdout and
    stderr appended to `log`. It leads a process group of its own, so a terminal's Ctrl-C
    reaches the supervisor only, and stopping it signals what it started too (a scheduler's
    trainer jobs). Ready when `probe` says so (no probe: once started)."""

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        *,
        env: Mapping[str, str],
        log: Path,
        address: str = "",
        probe: Probe | None = None,
        finishes: bool = False,
    ) -> None:
        super().__init__(name, log=log, address=address)
        self.command, self.env = list(command), dict(env)
        self.finishes = finishes
        self._probe = probe
        self._process: subprocess.Popen[bytes] | None = None
        self._out: IO[bytes] | None = None

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self._out = self.log.open("ab")
        self._out.write(f"=== fulmen up: {' '.join(self.command)}\n".encode())
        self._out.flush()
        self._process = subprocess.Popen(
            self.command, env=self.env, stdin=subprocess.DEVNULL, stdout=self._out,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip

    @property
    def pid(self) -> int | None:
        if self._process is None or self._process.poll() is not None:
            return None
        return self._process.pid

    def exit_code(self) -> int | None:
        return None if self._process is None else self._process.poll()

    def ready(self) -> bool:
        return self.pid is not None and (self._probe is None or self._probe())

    def stop(self, timeout_s: float) -> None:
        process, self._process = self._process, None
        if process is not None:
            pgid = process.pid  # the group it leads (start_new_session)
            if process.poll() is None:
                _signal_group(pgid, signal.SIGTERM)
                try:
                    process.wait(timeout_s)
                except subprocess.TimeoutExpired:
                    _signal_group(pgid, signal.SIGKILL)
                    process.wait()
            # Whatever it started and left behind goes too, within the same grace period.
            deadline = time.monotonic() + timeout_s
            while group_alive(pgid) and time.monotonic() < deadline:
                time.sleep(0.1)
            _signal_group(pgid, signal.SIGKILL)
        if self._out is not None:
            self._out.close()
            self._out = None
