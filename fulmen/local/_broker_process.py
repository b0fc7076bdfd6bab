"""The local broker's JVM seen from outside, as an OS process: whether a loopback port is
free or accepts connections, the tail of its log, signals to its process group, and the
error raised when it does not come up.

Standard library only (and Fulmen's root error); importing this module has no side effects.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
from pathlib import Path

from fulmen.local._jvm import _LOG_TAIL_BYTES, KafkaBrokerError


# Defined here, the lowest layer that raises it; re-exported by fulmen.local.kafka_broker
# and fulmen.local.
class KafkaBrokerStartError(KafkaBrokerError):
    """The broker process exited or did not accept connections in time.

    ``log_tail`` holds the end of the broker's log file (may be empty).
    """

    def __init__(self, message: str, *, log_tail: str = "") -> None:
        super().__init__(f"{message}\n--- broker log tail ---\n{log_tail}" if log_tail else message)
        self.log_tail = log_tail


def port_is_free(port: int) -> bool:
    """Whether ``port`` on 127.0.0.1 can be bound now (``SO_REUSEADDR`` set)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def accepts_connections(port: int) -> bool:
    """Whether a TCP connection to 127.0.0.1:``port`` succeeds within a second."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False


def read_tail(path: Path, limit: int = _LOG_TAIL_BYTES) -> str:
    """The last ``limit`` bytes of ``path``, decoded leniently; ``""`` if it cannot be read."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - limit))
            return handle.read().decode(errors="replace")
    except OSError:
        return ""


def signal_group(pid: int, sig: signal.Signals) -> None:
    """Signal the process group led by ``pid`` (falls back to the pid alone)."""
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
