"""A local broker's data directory before its JVM starts: ``server.properties`` (written
afresh on each start), the controller port an earlier run recorded there, and the KRaft
storage that ``kafka.tools.StorageTool format --standalone`` makes once.

Standard library only (and Fulmen's root error); importing this module has no side effects.
"""

from __future__ import annotations

import base64
import re
import subprocess
import time
import uuid
from pathlib import Path

from fulmen.local._broker_process import KafkaBrokerStartError
from fulmen.local._broker_security import LISTENER, BrokerSecurity
from fulmen.local._jvm import _java_command, output_tail, run_tool


def _new_cluster_id() -> str:
    """A Kafka cluster id: 22 characters of unpadded base64url, never starting with ``-``."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


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


def recorded_controller_port(data_dir: Path) -> int | None:
    """The controller port of the broker an earlier run formatted in ``data_dir``, else
    ``None`` (``format --standalone`` records it as the voter endpoint in the metadata log,
    so a restart must keep it)."""
    previous = _read_properties(data_dir / "server.properties")
    match = re.search(r":(\d+)$", previous.get("controller.quorum.bootstrap.servers", ""))
    if match is not None and (data_dir / "data" / "meta.properties").is_file():
        return int(match.group(1))
    return None


def write_config(
    data_dir: Path, *, port: int, controller_port: int, security: BrokerSecurity | None
) -> Path:
    """Write ``<data_dir>/server.properties`` (owner-only: with ``security`` it holds the
    admin's password) for a combined broker+controller on 127.0.0.1 and return its path."""
    log_dir = data_dir / "data"
    client = "PLAINTEXT" if security is None else LISTENER
    listeners = f"{client}://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}"
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.bootstrap.servers": f"127.0.0.1:{controller_port}",
        "listeners": listeners,
        "advertised.listeners": listeners,
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": client,
        "listener.security.protocol.map": f"CONTROLLER:PLAINTEXT,{client}:{client}",
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
    if security is not None:
        props |= security.properties(data_dir)
    config = data_dir / "server.properties"
    body = "".join(f"{key}={value}\n" for key, value in props.items())
    config.touch(mode=0o600)
    config.chmod(0o600)
    config.write_text("# Written by fulmen.local.kafka_broker; rewritten on each start.\n" + body)
    return config


def format_storage(
    data_dir: Path, config: Path, deadline: float, security: BrokerSecurity | None
) -> None:
    """Format the KRaft log dir under a new cluster id (creating ``security``'s users) unless
    it is formatted already; by ``deadline`` (monotonic seconds).

    Raises:
        KafkaBrokerStartError: the tool timed out or failed (with the end of its output).
    """
    if (data_dir / "data" / "meta.properties").is_file():
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
        *(security.format_arguments() if security is not None else ()),
    )
    try:
        completed = run_tool(command, cwd=data_dir, timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired as exc:
        raise KafkaBrokerStartError("kafka.tools.StorageTool format timed out") from exc
    if completed.returncode != 0:
        raise KafkaBrokerStartError(
            f"kafka.tools.StorageTool format failed (exit {completed.returncode})",
            log_tail=output_tail(completed),
        )
