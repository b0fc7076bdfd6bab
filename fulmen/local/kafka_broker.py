"""A real Apache Kafka 4.1.1 single-node KRaft broker for development and tests.

The broker is assembled from Maven Central jars (``fulmen/local/kafka/pom.xml``), downloaded
once with Maven into a cache outside the clone (:func:`cache_dir`), and run as a child JVM
(``kafka.Kafka server.properties``) in combined broker+controller mode on loopback.

Requirements on the machine: ``java`` (17+) and, for the first download only, ``mvn`` with
access to Maven Central. Everything here uses the standard library only (and Fulmen's root
error), and importing this
module has no side effects.

Entry points:

* :class:`KafkaBroker`: one broker owned by the calling process (tests, scripts).
* :func:`up` / :func:`down`: a detached dev broker whose state lives in ``.fulmen/kafka/``
  of the current working directory (``make kafka-up`` / ``make kafka-down``).
* :func:`run_producer_performance`: Kafka's own ``ProducerPerformance`` tool, parsed.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import dataclasses
import fcntl
import hashlib
import importlib.resources
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import IO, TYPE_CHECKING

from fulmen.errors import FulmenError

if TYPE_CHECKING:
    from collections.abc import Iterator
    from types import TracebackType

__all__ = [
    "KAFKA_VERSION",
    "KafkaBroker",
    "KafkaBrokerError",
    "KafkaBrokerStartError",
    "ProducerPerformanceResult",
    "cache_dir",
    "down",
    "ensure_kafka_jars",
    "run_producer_performance",
    "up",
]

KAFKA_VERSION = "4.1.1"
"""The Apache Kafka version that ``fulmen/local/kafka/pom.xml`` pins."""

_DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.6.1"
_MARKER_NAME = ".complete"
_BROKER_JVM_OPTS = (
    "-Xms256m",
    "-Xmx1g",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-Djava.awt.headless=true",
)
_TOOL_JVM_OPTS = ("-Xmx512m", "-XX:+UseG1GC", "-Djava.awt.headless=true")
_LOG_TAIL_BYTES = 8000


class KafkaBrokerError(FulmenError):
    """Any failure to fetch, start, stop or use the local Kafka broker and its tools."""


class KafkaBrokerStartError(KafkaBrokerError):
    """The broker process exited or did not accept connections in time.

    ``log_tail`` holds the end of the broker's log file (may be empty).
    """

    def __init__(self, message: str, *, log_tail: str = "") -> None:
        super().__init__(f"{message}\n--- broker log tail ---\n{log_tail}" if log_tail else message)
        self.log_tail = log_tail


# --------------------------------------------------------------------------------------------
# Jars
# --------------------------------------------------------------------------------------------


def cache_dir() -> Path:
    """Return the fulmen cache directory: ``$FULMEN_CACHE_DIR`` if set and non-empty, else
    ``~/.cache/fulmen``. The directory is not created."""
    configured = os.environ.get("FULMEN_CACHE_DIR")
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "fulmen"


def _kafka_home() -> Path:
    return cache_dir() / f"kafka-{KAFKA_VERSION}"


def _resource(name: str) -> bytes:
    return importlib.resources.files("fulmen.local").joinpath("kafka", name).read_bytes()


def _resources_digest(pom: bytes, log4j: bytes) -> str:
    return hashlib.sha256(pom + b"\0" + log4j).hexdigest()


def _marker_ok(marker: Path, digest: str) -> bool:
    try:
        return marker.read_text().strip() == digest
    except OSError:
        return False


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing) for the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def ensure_kafka_jars() -> Path:
    """Make sure the Kafka classpath is in the cache and return its ``libs`` directory.

    Contract:

    * The jars land in ``<cache_dir()>/kafka-4.1.1/libs``; the pom and the log4j2 config are
      copied next to it (the package directory may be read-only).
    * Idempotent: a marker holding the digest of the pom and log4j2 config is written last,
      so an interrupted download, or a changed pom, is redone from scratch on the next call.
      When the marker matches, the call only reads two small files (milliseconds).
    * Safe across processes: the download runs under an exclusive file lock.
    * Prints one line to stderr while downloading.

    Raises:
        KafkaBrokerError: ``mvn`` is missing or fails, or the broker jar is not found after.
    """
    home = _kafka_home()
    libs = home / "libs"
    marker = home / _MARKER_NAME
    pom = _resource("pom.xml")
    log4j = _resource("log4j2.properties")
    digest = _resources_digest(pom, log4j)
    if _marker_ok(marker, digest):
        return libs

    with _file_lock(home / ".lock"):
        if _marker_ok(marker, digest):  # another process finished while we waited
            return libs
        mvn = shutil.which("mvn")
        if mvn is None:
            raise KafkaBrokerError(
                "Apache Maven ('mvn') is not on PATH; it is needed once to download the Kafka "
                f"jars into {libs}"
            )
        marker.unlink(missing_ok=True)
        shutil.rmtree(libs, ignore_errors=True)
        _write_atomic(home / "pom.xml", pom)
        _write_atomic(home / "log4j2.properties", log4j)
        print(
            f"fulmen: downloading Apache Kafka {KAFKA_VERSION} jars from Maven Central "
            f"into {libs} (once) ...",
            file=sys.stderr,
            flush=True,
        )
        command = [
            mvn,
            "-B",
            "-q",
            "-f",
            str(home / "pom.xml"),
            f"{_DEPENDENCY_PLUGIN}:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={libs}",
        ]
        completed = subprocess.run(
            command,
            cwd=home,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
        )
        if completed.returncode != 0:
            output = (completed.stdout + completed.stderr)[-_LOG_TAIL_BYTES:]
            raise KafkaBrokerError(
                f"mvn copy-dependencies failed (exit {completed.returncode}):\n{output}"
            )
        if not (libs / f"kafka_2.13-{KAFKA_VERSION}.jar").is_file():
            raise KafkaBrokerError(
                f"mvn succeeded but kafka_2.13-{KAFKA_VERSION}.jar is not in {libs}"
            )
        _write_atomic(marker, f"{digest}\n".encode())
    return libs


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        candidate = Path(java_home) / "bin" / "java"
        if candidate.is_file():
            return str(candidate)
    java = shutil.which("java")
    if java is None:
        raise KafkaBrokerError("'java' (17+) is not on PATH and JAVA_HOME is not set")
    return java


def _java_command(main_class: str, jvm_opts: tuple[str, ...], *args: str) -> list[str]:
    libs = ensure_kafka_jars()
    log4j = libs.parent / "log4j2.properties"
    return [
        _java(),
        *jvm_opts,
        f"-Dlog4j2.configurationFile={log4j}",
        "-cp",
        f"{libs}{os.sep}*",
        main_class,
        *args,
    ]


# --------------------------------------------------------------------------------------------
# Broker
# --------------------------------------------------------------------------------------------


def _free_ports(count: int) -> list[int]:
    """Return ``count`` distinct TCP ports that were free on 127.0.0.1 a moment ago."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False


def _new_cluster_id() -> str:
    """A Kafka cluster id: 22 characters of unpadded base64url, never starting with ``-``."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def _read_tail(path: Path, limit: int = _LOG_TAIL_BYTES) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - limit))
            return handle.read().decode(errors="replace")
    except OSError:
        return ""


def _read_properties(path: Path) -> dict[str, str]:
    props: dict[str, str] = {}
    try:
        text = path.read_text()
    except OSError:
        return props
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            props[key.strip()] = value.strip()
    return props


class KafkaBroker:
    """A single-node KRaft Kafka broker (broker + controller in one JVM) on 127.0.0.1.

    Contract:

    * ``port`` / ``controller_port``: when ``None``, free ports are picked at construction. If
      ``data_dir`` already holds a broker from an earlier run, its controller port is reused
      (``format --standalone`` records it as the voter endpoint in the metadata log).
    * ``data_dir``: holds ``server.properties``, the Kafka log dir (``data/``), the JVM output
      (``broker.log``). When ``None``, a temporary directory is created and deleted again when
      the context manager exits (not by :meth:`stop`, so a stopped broker can be started again
      with its data).
    * :meth:`start` formats storage only when the log dir is not formatted yet, so
      stop/start (or :meth:`restart`) on the same instance keeps topics and messages.
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
    ) -> None:
        self._owns_data_dir = data_dir is None
        self._data_dir = (
            Path(tempfile.mkdtemp(prefix="fulmen-kafka-")) if data_dir is None else data_dir
        )
        if controller_port is None:
            previous = _read_properties(self._data_dir / "server.properties")
            match = re.search(r":(\d+)$", previous.get("controller.quorum.bootstrap.servers", ""))
            if match is not None and (self._data_dir / "data" / "meta.properties").is_file():
                controller_port = int(match.group(1))
        picked = iter(_free_ports(2))
        self._port = port if port is not None else next(picked)
        self._controller_port = controller_port if controller_port is not None else next(picked)
        if self._port == self._controller_port:
            raise KafkaBrokerError(f"port and controller_port are both {self._port}")
        self._process: subprocess.Popen[bytes] | None = None
        self._log_handle: IO[bytes] | None = None

    # -- properties ----------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The PLAINTEXT client port on 127.0.0.1."""
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
    def data_dir(self) -> Path:
        """The directory holding config, Kafka log dir and the broker's output."""
        return self._data_dir

    @property
    def log_path(self) -> Path:
        """The file that receives the broker JVM's stdout and stderr."""
        return self._data_dir / "broker.log"

    @property
    def pid(self) -> int | None:
        """The broker JVM's pid while it is running, else ``None``."""
        if self._process is None or self._process.poll() is not None:
            return None
        return self._process.pid

    @property
    def running(self) -> bool:
        """Whether the broker JVM started by this instance is still alive."""
        return self.pid is not None

    # -- lifecycle -----------------------------------------------------------------------

    def _write_config(self) -> Path:
        log_dir = self._data_dir / "data"
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": f"127.0.0.1:{self._controller_port}",
            "listeners": (
                f"PLAINTEXT://127.0.0.1:{self._port},CONTROLLER://127.0.0.1:{self._controller_port}"
            ),
            "advertised.listeners": (
                f"PLAINTEXT://127.0.0.1:{self._port},CONTROLLER://127.0.0.1:{self._controller_port}"
            ),
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(log_dir),
            "num.partitions": "4",
            "default.replication.factor": "1",
            "auto.create.topics.enable": "true",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "min.insync.replicas": "1",
            "group.initial.rebalance.delay.ms": "0",
            # Kafka's default message.max.bytes is 1048588 (~1 MiB): too small for multi-MB
            # events. Clients must raise their own limit too (librdkafka's is 1000000).
            "message.max.bytes": str(8 * 1024 * 1024),
        }
        config = self._data_dir / "server.properties"
        body = "".join(f"{key}={value}\n" for key, value in props.items())
        config.write_text(
            "# Written by fulmen.local.kafka_broker; rewritten on each start.\n" + body
        )
        return config

    def _format_storage(self, config: Path, deadline: float) -> None:
        if (self._data_dir / "data" / "meta.properties").is_file():
            return
        command = _java_command(
            "kafka.tools.StorageTool",
            ("-Xmx256m", "-Djava.awt.headless=true"),
            "format",
            "--standalone",
            "-t",
            _new_cluster_id(),
            "-c",
            str(config),
        )
        try:
            completed = subprocess.run(
                command,
                cwd=self._data_dir,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                check=False,
                timeout=max(1.0, deadline - time.monotonic()),
            )
        except subprocess.TimeoutExpired as exc:
            raise KafkaBrokerStartError("kafka.tools.StorageTool format timed out") from exc
        if completed.returncode != 0:
            raise KafkaBrokerStartError(
                f"kafka.tools.StorageTool format failed (exit {completed.returncode})",
                log_tail=(completed.stdout + completed.stderr)[-_LOG_TAIL_BYTES:],
            )

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
            if not _port_is_free(port):
                raise KafkaBrokerError(f"{name} {port} on 127.0.0.1 is already in use")
        self._data_dir.mkdir(parents=True, exist_ok=True)
        config = self._write_config()
        self._format_storage(config, deadline)
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
                    log_tail=_read_tail(self.log_path),
                )
            if _accepts_connections(self._port):
                return
            if time.monotonic() >= deadline:
                raise KafkaBrokerStartError(
                    f"Kafka broker did not accept connections on {self.bootstrap_servers} "
                    f"within {timeout_s:g}s (log: {self.log_path})",
                    log_tail=_read_tail(self.log_path),
                )
            time.sleep(0.1)

    def _terminate(self, grace_s: float) -> None:
        atexit.unregister(self._stop_at_exit)
        process = self._process
        if process is not None:
            if process.poll() is None:
                _signal_group(process.pid, signal.SIGTERM if grace_s > 0 else signal.SIGKILL)
                try:
                    process.wait(timeout=grace_s if grace_s > 0 else 10)
                except subprocess.TimeoutExpired:
                    _signal_group(process.pid, signal.SIGKILL)
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


def _signal_group(pid: int, sig: signal.Signals) -> None:
    """Signal the process group led by ``pid`` (falls back to the pid alone)."""
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


# --------------------------------------------------------------------------------------------
# Persistent dev broker: make kafka-up / make kafka-down
# --------------------------------------------------------------------------------------------


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


def up(port: int = 9092) -> str:
    """Start the dev broker detached (it outlives the calling process) and return its
    bootstrap servers.

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
        broker = KafkaBroker(port=port, data_dir=state_dir / "data-dir")
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
        _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while _pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _pid_alive(pid):
            _signal_group(pid, signal.SIGKILL)
            kill_deadline = time.monotonic() + 10
            while _pid_alive(pid) and time.monotonic() < kill_deadline:
                time.sleep(0.1)
        state_file.unlink(missing_ok=True)
        return True


# --------------------------------------------------------------------------------------------
# ProducerPerformance
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class ProducerPerformanceResult:
    """The final summary line of ``org.apache.kafka.tools.ProducerPerformance``."""

    records: int
    records_per_s: float
    mb_per_s: float
    avg_latency_ms: float
    max_latency_ms: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    p999_ms: float


_NUM = r"([0-9]+(?:[.,][0-9]+)?)"
_SUMMARY = re.compile(
    rf"^(\d+) records sent, {_NUM} records/sec \({_NUM} MB/sec\), {_NUM} ms avg latency, "
    rf"{_NUM} ms max latency, {_NUM} ms 50th, {_NUM} ms 95th, {_NUM} ms 99th, "
    rf"{_NUM} ms 99\.9th\.\s*$",
    re.MULTILINE,
)


def _parse_producer_performance(output: str) -> ProducerPerformanceResult | None:
    matches = list(_SUMMARY.finditer(output))
    if not matches:
        return None
    groups = matches[-1].groups()
    values = [float(value.replace(",", ".")) for value in groups[1:]]
    return ProducerPerformanceResult(int(groups[0]), *values)


def run_producer_performance(
    *,
    bootstrap_servers: str,
    topic: str,
    num_records: int,
    record_size: int,
    acks: str = "all",
    producer_props: dict[str, str] | None = None,
    payload_file: Path | None = None,
    timeout_s: float = 300,
) -> ProducerPerformanceResult:
    """Run Kafka's ``ProducerPerformance`` (unthrottled, ``--throughput -1``) and parse it.

    ``producer_props`` are extra producer configs (e.g. ``{"compression.type": "lz4"}``);
    they override ``bootstrap.servers`` and ``acks``. ``payload_file`` (one payload per line,
    picked at random per record) replaces the tool's single repeated payload of
    ``record_size`` bytes, which compresses far better than real records. The topic is
    auto-created by the broker
    if it does not exist.

    Raises:
        KafkaBrokerError: the tool exits non-zero, times out, or prints no summary line.
    """
    props = {"bootstrap.servers": bootstrap_servers, "acks": acks, **(producer_props or {})}
    command = _java_command(
        "org.apache.kafka.tools.ProducerPerformance",
        _TOOL_JVM_OPTS,
        "--topic",
        topic,
        "--num-records",
        str(num_records),
        *(
            ("--record-size", str(record_size))
            if payload_file is None
            else ("--payload-file", str(payload_file), "--payload-delimiter", "\n")
        ),
        "--throughput",
        "-1",
        "--producer-props",
        *(f"{key}={value}" for key, value in props.items()),
    )
    try:
        completed = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout_s,
        )
    except subprocess.TimeoutExpired as exc:
        raise KafkaBrokerError(f"ProducerPerformance timed out after {timeout_s:g}s") from exc
    output = completed.stdout + completed.stderr
    if completed.returncode != 0:
        raise KafkaBrokerError(
            f"ProducerPerformance failed (exit {completed.returncode}):\n"
            f"{output[-_LOG_TAIL_BYTES:]}"
        )
    result = _parse_producer_performance(completed.stdout)
    if result is None:
        raise KafkaBrokerError(
            f"ProducerPerformance printed no summary line:\n{output[-_LOG_TAIL_BYTES:]}"
        )
    return result
