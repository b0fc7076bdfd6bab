"""The stack's Kafka broker: `fulmen.local.KafkaBroker` owned by this process, and the
topics the services use."""

from __future__ import annotations

from pathlib import Path

from fulmen.kafka import KafkaSettings, TopicSettings, create_fulmen_topics
from fulmen.local import KafkaBroker, KafkaBrokerError
from fulmen.up._service import Service, ServiceFailed


class BrokerService(Service):
    """A single-node KRaft broker on 127.0.0.1:`port`, data in `data_dir` (kept between
    runs), output in `log`. `start()` returns once the broker accepts connections."""

    def __init__(self, *, port: int, data_dir: Path, log: Path, start_timeout_s: float) -> None:
        self._broker = KafkaBroker(port=port, data_dir=data_dir, log_path=log)
        super().__init__("kafka", log=log, address=self._broker.bootstrap_servers)
        self._timeout_s = start_timeout_s

    @property
    def bootstrap_servers(self) -> str:
        return self._broker.bootstrap_servers

    def start(self) -> None:
        try:
            self._broker.start(self._timeout_s)
        except KafkaBrokerError as exc:
            raise ServiceFailed(self.name, str(exc), self.tail()) from exc

    @property
    def pid(self) -> int | None:
        return self._broker.pid

    def exit_code(self) -> int | None:
        return self._broker.exit_code

    def ready(self) -> bool:
        return self._broker.running

    def stop(self, timeout_s: float) -> None:
        self._broker.stop(timeout_s)


def create_stack_topics(bootstrap_servers: str, topics: TopicSettings, partitions: int) -> None:
    """The topics of the loop, before any service uses them: spans, rewards, rollouts,
    episodes and dead letters with `partitions` each (the worker's co-partitioned inputs);
    the control topic with one (every version in one order; agents read it whole)."""
    kafka = KafkaSettings(bootstrap_servers=bootstrap_servers)
    create_fulmen_topics(kafka, topics, partitions=partitions)
