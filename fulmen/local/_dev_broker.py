"""The detached dev broker behind ``make kafka-up`` / ``make kafka-down``.

:func:`up` starts a :class:`~fulmen.local.KafkaBroker` that outlives the calling process and
:func:`down` stops it; their state lives in ``.fulmen/kafka/`` of the current working
directory. Standard library only; importing this module has no side effects.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from pathlib import Path

from fulmen.local._broker_process import signal_group
from fulmen.local._broker_security import BrokerSecurity
from fulmen.local._jvm import KAFKA_VERSION, _file_lock, _write_atomic
from fulmen.local.kafka_broker import KafkaBroker

__all__ = ["down", "up"]


def _state_dir() -> Path:
    return Path.cwd() / ".fulmen" / "kafka"


def _pid_alive(pid: int) -> bool:
    """Whether ``pid`` is a live (non-zombie) process; reaps it if it is our dead child."""
    with contextlib.suppress(ChildProcessError):
        reaped, _ = os.waitpid(pid, os.WNOHANG)
        if reaped == pid:
            return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        stat = ""
    if stat:
        return stat.rsplit(")", 1)[-1].split()[0] != "Z"
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_our_broker(pid: int, data_dir: str) -> bool:
    """Guard against pid reuse: the process must be a ``kafka.Kafka`` JVM of ``data_dir``."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return _pid_alive(pid)  # no /proc: trust the pid
    return b"kafka.Kafka" in cmdline and any(data_dir.encode() in part for part in cmdline)


def _read_state(state_file: Path) -> dict[str, object] | None:
    try:
        state = json.loads(state_file.read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


def _running_state(state_file: Path) -> tuple[int, int, str] | None:
    """(pid, port, data_dir) of a live dev broker recorded in ``state_file``, else None."""
    state = _read_state(state_file)
    if state is None:
        return None
    pid, port, data_dir = state.get("pid"), state.get("port"), state.get("data_dir")
    if not (isinstance(pid, int) and isinstance(port, int) and isinstance(data_dir, str)):
        return None
    if not (_pid_alive(pid) and _is_our_broker(pid, data_dir)):
        return None
    return pid, port, data_dir


def up(port: int = 9092, *, security: BrokerSecurity | None = None) -> str:
    """Start the dev broker detached (it outlives the calling process) and return its
    bootstrap servers; with `security` its client listener is SASL_SSL (`KafkaBroker`), its
    CA certificate in ``.fulmen/kafka/data-dir/tls/ca.pem``. SCRAM users are created only
    when the data directory is new.

    State (pid, ports, data dir, log) is kept in ``.fulmen/kafka/state.json`` of the current
    working directory, data in ``.fulmen/kafka/data-dir/`` (kept by :func:`down`; delete the
    directory for a fresh cluster). Idempotent: if the recorded broker is alive, its bootstrap
    servers are returned (even if ``port`` differs). A stale state file is replaced.

    Raises:
        KafkaBrokerError / KafkaBrokerStartError: as :meth:`KafkaBroker.start`.
    """
    state_dir = _state_dir()
    state_file = state_dir / "state.json"
    with _file_lock(state_dir / ".lock"):
        running = _running_state(state_file)
        if running is not None:
            _, running_port, _ = running
            return f"127.0.0.1:{running_port}"
        state_file.unlink(missing_ok=True)
        broker = KafkaBroker(port=port, data_dir=state_dir / "data-dir", security=security)
        broker.start()
        pid = broker.detach()
        state = {
            "pid": pid,
            "port": broker.port,
            "controller_port": broker.controller_port,
            "bootstrap_servers": broker.bootstrap_servers,
            "data_dir": str(broker.data_dir),
            "log": str(broker.log_path),
            "kafka_version": KAFKA_VERSION,
            "ca_location": None if broker.ca_location is None else str(broker.ca_location),
        }
        _write_atomic(state_file, (json.dumps(state, indent=2) + "\n").encode())
        return broker.bootstrap_servers


def down(timeout_s: float = 30) -> bool:
    """Stop the dev broker recorded in ``.fulmen/kafka/state.json`` of the current working
    directory: SIGTERM, then SIGKILL after ``timeout_s``. Removes the state file, keeps data.

    Returns True if a running broker was stopped, False if none was running.
    """
    state_dir = _state_dir()
    state_file = state_dir / "state.json"
    if not state_file.exists():
        return False
    with _file_lock(state_dir / ".lock"):
        running = _running_state(state_file)
        if running is None:
            state_file.unlink(missing_ok=True)
            return False
        pid, _, _ = running
        signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while _pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _pid_alive(pid):
            signal_group(pid, signal.SIGKILL)
            kill_deadline = time.monotonic() + 10
            while _pid_alive(pid) and time.monotonic() < kill_deadline:
                time.sleep(0.1)
        state_file.unlink(missing_ok=True)
        return True
