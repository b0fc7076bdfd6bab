"""Fixtures for integration tests that need a real Kafka broker or Kubernetes API server.

One Apache Kafka 4.1.1 KRaft broker (``fulmen.local.kafka_broker``) is started per test
session on free loopback ports, with its data in a pytest temp dir, and stopped at the end.
The first run downloads the jars from Maven Central into the fulmen cache (about 30 s).
A Kubernetes control plane (``tests.support.kube``) is started the same way, once, for the
tests that ask for ``kube_cluster``.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import pytest

from fulmen.local import KafkaBroker, kube_bin_dir
from tests.support.kube import KubeCluster, binaries_missing
from tests.support.stack import Stack

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    """A running single-node broker shared by the whole session."""
    broker = KafkaBroker(data_dir=tmp_path_factory.mktemp("kafka"))
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def bootstrap_servers(kafka_broker: KafkaBroker) -> str:
    """``bootstrap.servers`` of the session broker, e.g. ``127.0.0.1:40123``."""
    return kafka_broker.bootstrap_servers


@pytest.fixture
def stack(tmp_path: Path, bootstrap_servers: str) -> Iterator[Stack]:
    """A `fulmen store serve` process and topics of the test's own on the session broker,
    for tests that start `fulmen worker` processes."""
    running = Stack(tmp_path, bootstrap_servers, f"s{uuid.uuid4().hex[:8]}.")
    running.start_store()
    try:
        yield running
    finally:
        running.store.stop()


@pytest.fixture(scope="session")
def kube_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeCluster]:
    """etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok with one fake
    GPU node, shared by the session; skipped only when the binaries were never built."""
    missing = binaries_missing()
    if missing:
        pytest.skip(
            f"the Kubernetes binaries are not built ({', '.join(missing)} missing under "
            f"{kube_bin_dir().parent}); `fulmen kube bins` builds them once"
        )
    cluster = KubeCluster(tmp_path_factory.mktemp("kube"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
