"""Kafka's own ``org.apache.kafka.tools.ProducerPerformance`` tool, run on the cached jars
and parsed into a :class:`ProducerPerformanceResult`.

Failures raise :class:`~fulmen.local.KafkaBrokerError`. Standard library only; importing this
module has no side effects.
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
from pathlib import Path

from fulmen.local._jvm import _LOG_TAIL_BYTES, KafkaBrokerError, _java_command

__all__ = ["ProducerPerformanceResult", "run_producer_performance"]

_TOOL_JVM_OPTS = ("-Xmx512m", "-XX:+UseG1GC", "-Djava.awt.headless=true")


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
