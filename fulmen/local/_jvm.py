"""The Kafka classpath and the JVM: the jar cache, its one-time download, and java command lines.

The broker is assembled from Maven Central jars (``fulmen/local/kafka/pom.xml``), downloaded
once with Maven into a cache outside the clone (:func:`cache_dir`). Requirements on the
machine: ``java`` (17+) and, for the first download only, ``mvn`` with access to Maven
Central. :func:`_java_command` builds the command line shared by the broker and the
``ProducerPerformance`` tool. Standard library only (and Fulmen's root error); importing
this module has no side effects.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.resources
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from fulmen.errors import FulmenError

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["KAFKA_VERSION", "KafkaBrokerError", "cache_dir", "ensure_kafka_jars"]

KAFKA_VERSION = "4.1.1"
"""The Apache Kafka version that ``fulmen/local/kafka/pom.xml`` pins."""

_DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.6.1"
_MARKER_NAME = ".complete"
_LOG_TAIL_BYTES = 8000


# Defined here, the lowest layer, because the jar download raises it; re-exported by
# fulmen.local.kafka_broker and fulmen.local.
class KafkaBrokerError(FulmenError):
    """Any failure to fetch, start, stop or use the local Kafka broker and its tools."""


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
        completed = run_tool(command, cwd=home)
        if completed.returncode != 0:
            raise KafkaBrokerError(
                f"mvn copy-dependencies failed (exit {completed.returncode}):\n"
                f"{output_tail(completed)}"
            )
        if not (libs / f"kafka_2.13-{KAFKA_VERSION}.jar").is_file():
            raise KafkaBrokerError(
                f"mvn succeeded but kafka_2.13-{KAFKA_VERSION}.jar is not in {libs}"
            )
        _write_atomic(marker, f"{digest}\n".encode())
    return libs


def run_tool(
    command: list[str], *, cwd: Path, timeout: float | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a build or admin tool to its end with no input and its output captured as text;
    the caller reads the exit status. Raises `subprocess.TimeoutExpired` past `timeout`."""
    return subprocess.run(
        command,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )


def output_tail(completed: subprocess.CompletedProcess[str]) -> str:
    """The last `_LOG_TAIL_BYTES` of what a tool printed, for an error message."""
    return (completed.stdout + completed.stderr)[-_LOG_TAIL_BYTES:]


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
