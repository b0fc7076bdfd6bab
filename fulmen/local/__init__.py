"""The local stack: real services (a Kafka broker) started on this machine for development,
tests and benchmarks.

Entry points:

* :class:`KafkaBroker`: one broker owned by the calling process (tests, scripts); with
  :class:`BrokerSecurity`, its clients need TLS and SCRAM credentials, and ACLs apply.
* :func:`up` / :func:`down`: a detached dev broker whose state lives in ``.fulmen/kafka/``
  of the current working directory (``make kafka-up`` / ``make kafka-down``).
* :func:`run_producer_performance`: Kafka's own ``ProducerPerformance`` tool, parsed.
* :func:`ensure_kafka_jars` / :func:`cache_dir`: the Kafka jars, downloaded once.
* :func:`ensure_kube_binaries`: etcd, the Kubernetes control plane and kwok, built once from
  the Go module proxy (the scheduler's tests run them).

Every module here uses the standard library only (a secured broker's certificates need
``cryptography``, imported when they are made); importing the package has no side effects.
"""

from fulmen.local._dev_broker import down, up
from fulmen.local._jvm import KAFKA_VERSION, cache_dir, ensure_kafka_jars
from fulmen.local._kube_build import (
    KUBE_BINARIES,
    KUBE_VERSION,
    KubeBuildError,
    ensure_kube_binaries,
    kube_bin_dir,
    kwok_stages_file,
)
from fulmen.local.kafka_broker import (
    BrokerSecurity,
    KafkaBroker,
    KafkaBrokerError,
    KafkaBrokerStartError,
)
from fulmen.local.producer_performance import ProducerPerformanceResult, run_producer_performance

__all__ = [
    "KAFKA_VERSION",
    "KUBE_BINARIES",
    "KUBE_VERSION",
    "BrokerSecurity",
    "KafkaBroker",
    "KafkaBrokerError",
    "KafkaBrokerStartError",
    "KubeBuildError",
    "ProducerPerformanceResult",
    "cache_dir",
    "down",
    "ensure_kafka_jars",
    "ensure_kube_binaries",
    "kube_bin_dir",
    "kwok_stages_file",
    "run_producer_performance",
    "up",
]
