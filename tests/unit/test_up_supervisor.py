"""`fulmen up`'s supervision with small real processes: start order and readiness, a
service that dies or never gets ready, one that may finish, and stopping in reverse order
with SIGTERM, then SIGKILL, whatever each started included."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import pytest

from fulmen.up import Interrupted, ProcessService, ServiceFailed, Supervisor, group_alive

_IGNORES_SIGTERM = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
)


def _service(tmp_path: Path, name: str, code: str, **options: object) -> ProcessService:
    return ProcessService(
        name, [sys.executable, "-c", code], env=dict(os.environ), log=tmp_path / f"{name}.log",
        **options,  # type: ignore[arg-type]  # probe / finishes
    )  # fmt: skip


def test_starts_in_order_and_stops_in_reverse_with_what_each_started(tmp_path: Path) -> None:
    marker = tmp_path / "ready"
    first = _service(
        tmp_path, "first",
        f"import pathlib, time; time.sleep(0.5); pathlib.Path({str(marker)!r}).touch(); "
        "time.sleep(60)",
        probe=marker.exists,
    )  # fmt: skip
    # It ignores SIGTERM and leaves a child behind: both are killed after the timeout.
    stubborn = _service(
        tmp_path, "stubborn",
        f"import subprocess, sys; subprocess.Popen([sys.executable, '-c', 'import time; "
        f"time.sleep(60)']); {_IGNORES_SIGTERM}",
    )  # fmt: skip
    stopped: list[str] = []
    stop = threading.Event()
    with Supervisor(stop, stop_timeout_s=1, on_stop=lambda s: stopped.append(s.name)) as sup:
        sup.start(first, timeout_s=10)
        assert marker.exists()
        sup.start(stubborn, timeout_s=10)
        pids = [first.pid, stubborn.pid]
        stop.set()
        assert sup.watch() is None
    assert stopped == ["stubborn", "first"]
    assert all(pid is not None and not group_alive(pid) for pid in pids)
    assert (first.exit_code(), first.pid) == (None, None)  # stopped, not died


def test_a_service_that_dies_is_reported_with_its_log(tmp_path: Path) -> None:
    stop = threading.Event()
    with Supervisor(stop, stop_timeout_s=1) as sup:
        sup.start(_service(tmp_path, "steady", "import time; time.sleep(60)"), timeout_s=5)
        sup.start(_service(tmp_path, "flaky", "import time; time.sleep(0.5); "
                           "print('out of luck', flush=True); raise SystemExit(7)"),
                  timeout_s=5)  # fmt: skip
        failure = sup.watch()
    assert failure is not None
    assert (failure.name, failure.reason) == ("flaky", "exited with code 7")
    assert "out of luck" in failure.tail


def test_readiness_failures(tmp_path: Path) -> None:
    stop = threading.Event()
    with Supervisor(stop, stop_timeout_s=1) as sup:
        never = _service(tmp_path, "never", "import time; time.sleep(60)", probe=lambda: False)
        with pytest.raises(ServiceFailed, match=r"never: not ready after 0\.5 s"):
            sup.start(never, timeout_s=0.5)
        with pytest.raises(ServiceFailed, match="exited with code 3"):
            sup.start(_service(tmp_path, "gone", "raise SystemExit(3)", probe=lambda: False),
                      timeout_s=10)  # fmt: skip
        stop.set()
        with pytest.raises(Interrupted):
            sup.start(_service(tmp_path, "late", "import time; time.sleep(60)",
                               probe=lambda: False), timeout_s=10)  # fmt: skip
        assert [s.name for s in sup.services] == ["never", "gone", "late"]
    assert sup.services == []


def test_a_service_that_may_finish_is_set_aside(tmp_path: Path) -> None:
    stop = threading.Event()
    done = _service(tmp_path, "agent", "print('done')", finishes=True)
    with Supervisor(stop, stop_timeout_s=1) as sup:
        sup.start(done, timeout_s=5)
        threading.Timer(1.5, stop.set).start()
        assert sup.watch() is None
        assert sup.finished == [done]
