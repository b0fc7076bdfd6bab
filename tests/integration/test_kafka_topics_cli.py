"""`fulmen kafka topics` creates Fulmen's topics on a real broker, and leaves existing ones."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

from confluent_kafka.admin import AdminClient


def _fulmen_kafka_topics(bootstrap_servers: str, prefix: str, partitions: int) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "fulmen.cli", "kafka", "topics", "--partitions", str(partitions)],
        env={
            **os.environ,
            "FULMEN_KAFKA__BOOTSTRAP_SERVERS": bootstrap_servers,
            "FULMEN_TOPICS__PREFIX": prefix,
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_kafka_topics_creates_the_topics_once(bootstrap_servers: str) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}."
    expected = {
        f"{prefix}spans": 3,
        f"{prefix}rewards": 3,
        f"{prefix}rollouts": 3,
        f"{prefix}feedback": 3,
        f"{prefix}episodes": 3,
        f"{prefix}dlq": 3,
        f"{prefix}control": 1,
    }
    printed = _fulmen_kafka_topics(bootstrap_servers, prefix, 3)
    assert printed.splitlines() == [
        f"{topic}: {count} partition{'' if count == 1 else 's'}"
        for topic, count in expected.items()
    ]
    metadata = AdminClient({"bootstrap.servers": bootstrap_servers}).list_topics(timeout=30)
    found = {
        name: len(topic.partitions)
        for name, topic in metadata.topics.items()
        if name.startswith(prefix)
    }
    assert found == expected
    # A second run with another count leaves the existing topics as they are.
    again = _fulmen_kafka_topics(bootstrap_servers, prefix, 6)
    assert f"{prefix}spans: 3 partitions" in again.splitlines()
