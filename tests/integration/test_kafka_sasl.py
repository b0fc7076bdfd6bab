"""Fulmen on a cluster that requires TLS and SASL: a broker of its own with a SASL_SSL
listener (SCRAM-SHA-512, certificates made at its start, ACLs enforced), a Fulmen user whose
ACLs allow only Fulmen's topics and groups, and every client configured by the same
`KafkaSettings`: the producer SDK, the stream worker (Faust) and the admin client."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

import fulmen
from fulmen.kafka import (
    BrokerRefused,
    BrokerUnreachable,
    KafkaSettings,
    create_fulmen_topics,
    ensure_topics,
)
from fulmen.local import BrokerSecurity, KafkaBroker
from fulmen.producers import FulmenSettings, Producer
from tests.support.stack import Stack, free_port, kafka_env, wait_for
from tests.support.store_state import episodes_written, raw_counts, rollout_events, store_state

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.timeout(600)

ADMIN_PASSWORD = secrets.token_urlsafe(16)
FULMEN_PASSWORD = secrets.token_urlsafe(16)
PREFIX = "secured."
APP_ID = "secured-worker"


@pytest.fixture(scope="module")
def secured_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    security = BrokerSecurity(admin_password=ADMIN_PASSWORD, users={"fulmen": FULMEN_PASSWORD})
    broker = KafkaBroker(data_dir=tmp_path_factory.mktemp("kafka-sasl"), security=security)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def _as(broker: KafkaBroker, user: str, password: str) -> KafkaSettings:
    return KafkaSettings(
        bootstrap_servers=broker.bootstrap_servers,
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username=user,
        sasl_password=password,  # type: ignore[arg-type]  # pydantic makes it a SecretStr
        ssl_ca_location=str(broker.ca_location),
    )


def _fulmen(args: list[str], kafka: KafkaSettings, tmp: Path) -> subprocess.CompletedProcess[str]:
    """`fulmen ARGS` in `tmp` with `kafka` as its `FULMEN_KAFKA__*`, Fulmen's topics and
    worker id."""
    env = {
        **os.environ,
        **kafka_env(kafka),
        "FULMEN_TOPICS__PREFIX": PREFIX,
        "FULMEN_WORKER_APP_ID": APP_ID,
        "FULMEN_WORKER_DATA_DIR": str(tmp / "worker"),
    }
    command = [sys.executable, "-m", "fulmen.cli", *args]
    return subprocess.run(command, env=env, cwd=tmp, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def fulmen_kafka(
    secured_broker: KafkaBroker, tmp_path_factory: pytest.TempPathFactory
) -> KafkaSettings:
    """The Fulmen user's settings, once the admin granted it Fulmen's ACLs (`fulmen kafka
    acls`), and no more."""
    admin = _as(secured_broker, "admin", ADMIN_PASSWORD)
    granted = _fulmen(["kafka", "acls", "User:fulmen"], admin, tmp_path_factory.mktemp("acls"))
    assert granted.returncode == 0, granted.stderr
    assert f"User:fulmen may READ on GROUP LITERAL {APP_ID}" in granted.stdout
    return _as(secured_broker, "fulmen", FULMEN_PASSWORD)


def test_sdk_to_worker_to_store_over_sasl_ssl(tmp_path: Path, fulmen_kafka: KafkaSettings) -> None:
    stack = Stack(
        tmp_path, fulmen_kafka.bootstrap_servers, PREFIX, create_topics=False, kafka=fulmen_kafka
    )
    create_fulmen_topics(fulmen_kafka, stack.topics, partitions=2)  # as the Fulmen user
    settings = FulmenSettings(
        transport="kafka",
        kafka=fulmen_kafka,
        topics={"prefix": PREFIX},
        producer={"spill_dir": tmp_path / "spill", "capture_openai": False},
    )
    stack.start_store()
    worker = stack.worker(APP_ID, "secured")
    producer = Producer(settings, transport=fulmen.producers.transport_for(settings))
    try:
        worker.start()
        for event in rollout_events("s", 10):
            producer.emit(event)
        assert producer.flush(60)
        store = stack.client("secured")
        wait_for(lambda: episodes_written(store) >= 10, timeout_s=240, what="10 episodes")
        assert store_state(store)["raw"] == raw_counts(60, 10, 20)
    finally:
        producer.close()
        worker.stop()
        stack.store.stop()


def test_the_fulmen_user_is_confined_to_its_topics(fulmen_kafka: KafkaSettings) -> None:
    with pytest.raises(RuntimeError, match="TOPIC_AUTHORIZATION_FAILED"):
        ensure_topics(fulmen_kafka, ["elsewhere.spans"], partitions=1)


def test_a_client_without_credentials_is_refused(secured_broker: KafkaBroker) -> None:
    plaintext = KafkaSettings(bootstrap_servers=secured_broker.bootstrap_servers)
    with pytest.raises(
        BrokerUnreachable,
        match="FULMEN_KAFKA__SECURITY_PROTOCOL when the cluster requires TLS or SASL",
    ):
        ensure_topics(plaintext, [PREFIX + "spans"], partitions=1, wait_s=5)


def test_a_wrong_password_is_refused_at_once(secured_broker: KafkaBroker) -> None:
    wrong = _as(secured_broker, "fulmen", "not-the-password")
    # No deadline: a refusal is final, not a broker to wait for.
    with pytest.raises(BrokerRefused, match="Authentication failed"):
        ensure_topics(wrong, [PREFIX + "spans"], partitions=1, wait_s=None)


def test_a_worker_with_a_wrong_password_exits_with_the_reason(
    tmp_path: Path, secured_broker: KafkaBroker
) -> None:
    wrong = _as(secured_broker, "fulmen", "not-the-password")
    done = _fulmen(["worker"], wrong, tmp_path)
    assert done.returncode == 2, done.stderr
    assert "refused this client" in done.stderr
    assert "not-the-password" not in done.stderr + done.stdout


def test_fulmen_kafka_up_secure_starts_a_sasl_ssl_dev_broker(tmp_path: Path) -> None:
    port = free_port()
    dev = KafkaSettings(
        bootstrap_servers=f"127.0.0.1:{port}",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="dev",
        sasl_password=FULMEN_PASSWORD,  # type: ignore[arg-type]  # pydantic makes it a SecretStr
        ssl_ca_location=str(tmp_path / ".fulmen/kafka/data-dir/tls/ca.pem"),
    )
    started = _fulmen(["kafka", "up", "--port", str(port), "--secure"], dev, tmp_path)
    try:
        assert started.returncode == 0, started.stderr
        assert "clients trust .fulmen/kafka/data-dir/tls/ca.pem" in started.stdout
        topics = _fulmen(["kafka", "topics", "--partitions", "1"], dev, tmp_path)
        assert topics.returncode == 0, topics.stderr
        assert f"{PREFIX}control: 1 partition" in topics.stdout
    finally:
        assert _fulmen(["kafka", "down"], dev, tmp_path).returncode == 0
