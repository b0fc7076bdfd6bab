"""A real Apache Kafka 4.1.1 single-node KRaft broker, owned by the calling process.

:class:`KafkaBroker` runs the cached jars (:func:`fulmen.local.ensure_kafka_jars`) as a child
JVM (``kafka.Kafka server.properties``) in combined broker+controller mode on loopback; with
:class:`BrokerSecurity`, its client listener is SASL_SSL with SCRAM users and ACLs enforced.
Failures raise :class:`KafkaBrokerError` (:class:`KafkaBrokerStartError` when the broker does
not come up). The data directory is prepared by ``_broker_storage.py``; the process helpers
and that error are in ``_broker_process.py``. Standard library only (and Fulmen's root error;
``cryptography`` for a secured broker's certificates); importing this module has no side
effects.
"""

from __future__ import annotations

import atexit
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING

from fulmen._net import free_ports
from fulmen.local._broker_process import (
    KafkaBrokerStartError,
    accepts_connections,
    port_is_free,
    read_tail,
    signal_group,
)
from fulmen.local._broker_security import BrokerSecurity
from fulmen.local._broker_storage import format_storage, recorded_controller_port, write_config
from fulmen.local._jvm import KafkaBrokerError, _java_command, ensure_kafka_jars

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["BrokerSecurity", "KafkaBroker", "KafkaBrokerError", "KafkaBrokerStartError"]

_BROKER_JVM_OPTS = (
    "-Xms256m",
    "-Xmx1g",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-Djava.awt.headless=true",
)


class KafkaBroker:
    """A single-node KRaft Kafka broker (broker + controller in one JVM) on 127.0.0.1.

    Contract:

    * ``port`` / ``controller_port``: when ``None``, free ports are picked at construction. If
      ``data_dir`` already holds a broker from an earlier run, its controller port is reused
      (``format --standalone`` records it as the voter endpoint in the metadata log).
    * ``data_dir``: holds ``server.properties``, the Kafka log dir (``data/``), the JVM output
      (``broker.log``, or ``log_path`` when given). When ``None``, a temporary directory is
      created and deleted again when the context manager exits (not by :meth:`stop`, so a
      stopped broker can be started again with its data).
    * :meth:`start` formats storage only when the log dir is not formatted yet, so
      stop/start (or :meth:`restart`) on the same instance keeps topics and messages.
    * ``security``: when given, the client listener is SASL_SSL as :class:`BrokerSecurity`
      describes (``server.properties`` then holds the admin's password and is readable by
      its owner only); else PLAINTEXT, open to anyone on this machine.
    * The JVM runs in its own process group (so a terminal's Ctrl-C does not reach it) with
      stdin closed. It is stopped at normal interpreter exit (``atexit``) unless
      :meth:`detach` was called; a SIGKILLed Python process leaves it running.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        controller_port: int | None = None,
        data_dir: Path | None = None,
        log_path: Path | None = None,
        security: BrokerSecurity | None = None,
    ) -> None:
        self._security = security
        self._owns_data_dir = data_dir is None
        self._data_dir = (
            Path(tempfile.mkdtemp(prefix="fulmen-kafka-")) if data_dir is None else data_dir
        )
        if controller_port is None:
            controller_port = recorded_controller_port(self._data_dir)
        picked = iter(free_ports(2))
        self._port = port if port is not None else next(picked)
        self._controller_port = controller_port if controller_port is not None else next(picked)
        if self._port == self._controller_port:
            raise KafkaBrokerError(f"port and controller_port are both {self._port}")
        self._log_path = log_path if log_path is not None else self._data_dir / "broker.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._log_handle: IO[bytes] | None = None

    # -- properties ----------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The client port on 127.0.0.1 (PLAINTEXT, or SASL_SSL with ``security``)."""
        return self._port

    @property
    def controller_port(self) -> int:
        """The KRaft CONTROLLER listener port on 127.0.0.1."""
        return self._controller_port

    @property
    def bootstrap_servers(self) -> str:
        """``127.0.0.1:<port>``, for ``bootstrap.servers``."""
        return f"127.0.0.1:{self._port}"

    @property
    def ca_location(self) -> Path | None:
        """The PEM certificate clients of a secured broker trust (made by :meth:`start`);
        ``None`` without ``security``."""
        if self._security is None:
            return None
        return self._security.certificates(self._data_dir).ca

    @property
    def data_dir(self) -> Path:
        """The directory holding config, Kafka log dir and the broker's output."""
        return self._data_dir

    @property
    def log_path(self) -> Path:
        """The file that receives the broker JVM's stdout and stderr (appended)."""
        return self._log_path

    @property
    def pid(self) -> int | None:
        """The broker JVM's pid while it is running, else ``None``."""
        if self._process is None or self._process.poll() is not None:
            return None
        return self._process.pid

    @property
    def exit_code(self) -> int | None:
        """The JVM's exit code once the broker started by this instance has died on its
        own, else ``None`` (running, stopped by :meth:`stop`, or never started)."""
        return None if self._process is None else self._process.poll()

    @property
    def running(self) -> bool:
        """Whether the broker JVM started by this instance is still alive."""
        return self.pid is not None

    # -- lifecycle -----------------------------------------------------------------------

    def start(self, timeout_s: float = 90) -> None:
        """Format storage if needed, launch the broker JVM, and wait until it is usable.

        Returns once the client port accepts a TCP connection (Kafka opens it only after the
        broker is unfenced). Jars are downloaded first if the cache is empty; that download
        is not counted in ``timeout_s``.

        Raises:
            KafkaBrokerError: already running, or a port is taken by another process.
            KafkaBrokerStartError: formatting failed, the JVM exited, or ``timeout_s`` passed
                (the JVM is killed then); carries the tail of :attr:`log_path`.
        """
        if self.running:
            raise KafkaBrokerError(f"broker already running (pid {self.pid})")
        ensure_kafka_jars()
        deadline = time.monotonic() + timeout_s
        for name, port in (("port", self._port), ("controller_port", self._controller_port)):
            if not port_is_free(port):
                raise KafkaBrokerError(f"{name} {port} on 127.0.0.1 is already in use")
        self._data_dir.mkdir(parents=True, exist_ok=True)
        self._log_path.parent.mkdir(parents=True, exist_ok=True)
        config = write_config(
            self._data_dir,
            port=self._port,
            controller_port=self._controller_port,
            security=self._security,
        )
        format_storage(self._data_dir, config, deadline, self._security)
        command = _java_command(
            "kafka.Kafka",
            (*_BROKER_JVM_OPTS, f"-Dkafka.logs.dir={self._data_dir / 'logs'}"),
            str(config),
        )
        self._log_handle = self.log_path.open("ab")
        self._log_handle.write(f"\n=== fulmen: starting {' '.join(command)}\n".encode())
        self._log_handle.flush()
        self._process = subprocess.Popen(
            command,
            cwd=self._data_dir,
            stdin=subprocess.DEVNULL,
            stdout=self._log_handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        atexit.register(self._stop_at_exit)
        try:
            self._wait_ready(deadline, timeout_s)
        except BaseException:
            self._terminate(grace_s=0)
            raise

    def _stop_at_exit(self) -> None:
        self._terminate(grace_s=10)

    def _wait_ready(self, deadline: float, timeout_s: float) -> None:
        assert self._process is not None
        while True:
            code = self._process.poll()
            if code is not None:
                raise KafkaBrokerStartError(
                    f"Kafka broker exited with code {code} during startup (log: {self.log_path})",
                    log_tail=read_tail(self.log_path),
                )
            if accepts_connections(self._port):
                return
            if time.monotonic() >= deadline:
                raise KafkaBrokerStartError(
                    f"Kafka broker did not accept connections on {self.bootstrap_servers} "
                    f"within {timeout_s:g}s (log: {self.log_path})",
                    log_tail=read_tail(self.log_path),
                )
            time.sleep(0.1)

    def _terminate(self, grace_s: float) -> None:
        atexit.unregister(self._stop_at_exit)
        process = self._process
        if process is not None:
            if process.poll() is None:
                signal_group(process.pid, signal.SIGTERM if grace_s > 0 else signal.SIGKILL)
                try:
                    process.wait(timeout=grace_s if grace_s > 0 else 10)
                except subprocess.TimeoutExpired:
                    signal_group(process.pid, signal.SIGKILL)
                    process.wait(timeout=10)
            self._process = None
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None

    def stop(self, timeout_s: float = 30) -> None:
        """Stop the broker: SIGTERM to its process group (a clean, controlled shutdown),
        then SIGKILL if it is still alive after ``timeout_s``. No-op if not running.
        Keeps :attr:`data_dir`, so :meth:`start` can be called again."""
        self._terminate(grace_s=max(timeout_s, 0.001))

    def restart(self, timeout_s: float = 90) -> None:
        """:meth:`stop` then :meth:`start` on the same ports and data (no reformat)."""
        self.stop()
        self.start(timeout_s)

    def detach(self) -> int:
        """Forget the running JVM without stopping it and return its pid. After this, the
        instance no longer controls the broker (stop it by pid, as :func:`down` does)."""
        process = self._process
        if process is None or process.poll() is not None:
            raise KafkaBrokerError("broker is not running")
        pid = process.pid
        atexit.unregister(self._stop_at_exit)
        # Keep the Popen object referenced forever so it neither warns nor gets reaped
        # under a later waitpid() by someone else's subprocess code.
        _DETACHED.append(process)
        self._process = None
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None
        return pid

    def __enter__(self) -> KafkaBroker:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self.stop()
        finally:
            if self._owns_data_dir:
                shutil.rmtree(self._data_dir, ignore_errors=True)

    def __repr__(self) -> str:
        return (
            f"KafkaBroker(bootstrap_servers={self.bootstrap_servers!r}, "
            f"controller_port={self._controller_port}, data_dir={str(self._data_dir)!r}, "
            f"pid={self.pid})"
        )


_DETACHED: list[subprocess.Popen[bytes]] = []
