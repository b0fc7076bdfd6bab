"""The local stack as separate processes, for tests of the stream worker: a store server
(`fulmen store serve`) and workers (`fulmen worker`), each started and killed at will."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

from confluent_kafka import ConsumerGroupState, Producer
from confluent_kafka.admin import AdminClient
from pydantic import SecretStr

from fulmen._net import free_ports
from fulmen.kafka import KafkaSettings, TopicSettings
from fulmen.kafka import create_topics as make_topics
from fulmen.schemas import Codec, Event, SingleObjectCodec
from fulmen.store import LightningStore, StoreSettings


def free_port() -> int:
    (port,) = free_ports(1)
    return port


def wait_for(condition: Callable[[], bool], *, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout_s} s for {what}")
        time.sleep(0.25)


class Process:
    """A `fulmen` subcommand in its own process, its output in `log`."""

    def __init__(self, args: Sequence[str], env: dict[str, str], log: Path) -> None:
        self.args, self.env, self.log = list(args), env, log
        self._proc: subprocess.Popen[bytes] | None = None
        self._out: IO[bytes] | None = None

    def start(self) -> None:
        self._out = self.log.open("ab")
        command = [sys.executable, "-m", "fulmen.cli", *self.args]
        self._proc = subprocess.Popen(
            command, env={**os.environ, **self.env}, stdout=self._out, stderr=subprocess.STDOUT
        )

    @property
    def pid(self) -> int:
        """The running process's id."""
        assert self._proc is not None, "not started"
        return self._proc.pid

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(sig)
            try:
                self._proc.wait(30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(30)
        if self._out is not None:
            self._out.close()
        self._proc = self._out = None


def kafka_env(kafka: KafkaSettings) -> dict[str, str]:
    """`kafka` as the `FULMEN_KAFKA__*` variables a `fulmen` process reads."""
    env = {}
    for name, value in kafka.model_dump(exclude_none=True).items():
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        env[f"FULMEN_KAFKA__{name.upper()}"] = json.dumps(value) if name == "options" else value
    return env


class Stack:
    """A store server on its own chDB directory, and the settings workers need to use it and
    the session's broker with topics of their own (`prefix`). Every Kafka client of the stack
    (its workers included) connects with `kafka`: plaintext to `bootstrap` when not given."""

    def __init__(
        self,
        root: Path,
        bootstrap: str,
        prefix: str,
        *,
        partitions: int = 4,
        create_topics: bool = True,
        kafka: KafkaSettings | None = None,
    ) -> None:
        self.root, self.bootstrap, self.prefix = root, bootstrap, prefix
        self.kafka = kafka or KafkaSettings(bootstrap_servers=bootstrap)
        self.topics = TopicSettings(prefix=prefix)
        self.store_port = free_port()
        self.store_password = secrets.token_urlsafe(16)
        self.store = Process(
            ["store", "serve", "--port", str(self.store_port)],
            {
                "FULMEN_STORE__PATH": str(root / "store"),
                "FULMEN_STORE__PASSWORD": self.store_password,
            },
            root / "store.log",
        )
        if create_topics:
            names = [*self.topics.stream_inputs(), *self.topics.stream_outputs()]
            make_topics(self.kafka, names, partitions=partitions)

    def with_topics(self, prefix: str, *, partitions: int = 4) -> Stack:
        """Topics of another prefix on the same broker, served by this stack's store."""
        other = Stack(self.root, self.bootstrap, prefix, partitions=partitions, kafka=self.kafka)
        other.store, other.store_port = self.store, self.store_port
        other.store_password = self.store_password
        return other

    def start_store(self) -> None:
        """Start the store server and wait until it answers."""
        self.store.start()
        wait_for(self._store_answers, timeout_s=60, what="the store server")

    def _store_answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.store_port}/ping", timeout=1):
                return True
        except OSError:
            return False

    def worker(self, app_id: str, database: str, **options: str) -> Worker:
        port = free_port()
        env = (
            kafka_env(self.kafka)
            | {
                "FULMEN_TOPICS__PREFIX": self.prefix,
                "FULMEN_STORE__URL": f"http://127.0.0.1:{self.store_port}",
                "FULMEN_STORE__PASSWORD": self.store_password,
                "FULMEN_STORE__DATABASE": database,
                "FULMEN_WORKER_APP_ID": app_id,
                "FULMEN_WORKER_WEB_PORT": str(port),
                "FULMEN_WORKER_DATA_DIR": str(self.root / f"{app_id}-{port}"),
                # Static membership: a restarted `Worker` takes its partitions back at once.
                "FULMEN_WORKER_INSTANCE_ID": f"{app_id}-{port}",
                "FULMEN_WORKER_GRACE_S": "2",
                "FULMEN_WORKER_RETRY_MAX_S": "2",
            }
            | {f"FULMEN_WORKER_{k.upper()}": v for k, v in options.items()}
        )
        log = self.root / f"{app_id}-{port}.log"
        return Worker(["worker"], env, log, port, token=options.get("web_token"))

    def wait_for_group(self, group: str, members: int, timeout_s: float = 120) -> None:
        """Until the consumer group `group` (a worker's app id) is stable with `members`
        members: every partition assigned, none about to move."""
        admin = AdminClient(self.kafka.client_config())

        def settled() -> bool:
            (future,) = admin.describe_consumer_groups([group], request_timeout=5).values()
            try:
                found = future.result(timeout=10)
            except Exception:  # the group does not exist yet
                return False
            stable = found.state == ConsumerGroupState.STABLE
            return bool(stable and len(found.members) == members)

        wait_for(settled, timeout_s=timeout_s, what=f"{members} worker(s) holding partitions")

    def client(self, database: str) -> LightningStore:
        url = f"http://127.0.0.1:{self.store_port}"
        password = SecretStr(self.store_password)
        return LightningStore(StoreSettings(url=url, database=database, password=password))

    def produce(
        self,
        events: Sequence[Event],
        *,
        garbage: Sequence[bytes] = (),
        codec: Codec | None = None,
        topic: str | None = None,
    ) -> None:
        """Produce `events` (keyed by rollout id; to their own topic unless `topic` is given)
        and `garbage` onto the spans topic. Values are not size-checked here: a compressible
        value over the broker's limit gets through compressed, as it can from any producer."""
        codec = codec or SingleObjectCodec()
        producer = Producer(
            {
                **self.kafka.client_config(),
                "partitioner": "murmur2_random",
                "acks": "all",
                "compression.type": "lz4",  # as the producer SDK sends
                "message.max.bytes": 100_000_000,
            }
        )
        for event in events:
            to = topic or self.topics.for_event(event.event_type)
            key = event.meta.rollout_id.encode()
            producer.produce(to, key=key, value=codec.encode(event, topic=to))
        for value in garbage:
            producer.produce(self.topics.for_event("span"), key=b"garbage", value=value)
        assert producer.flush(30) == 0


class Worker(Process):
    def __init__(
        self, args: Sequence[str], env: dict[str, str], log: Path, port: int, *, token: str | None
    ) -> None:
        super().__init__(args, env, log)
        self.port = port
        self.token = token  # FULMEN_WORKER_WEB_TOKEN, sent as a bearer token

    def answers(self) -> bool:
        """Whether the worker's web server (up once Faust started) answers."""
        try:
            self.metrics()
        except OSError:
            return False
        return True

    def metrics(self) -> dict[str, float]:
        """The worker's Prometheus samples by name (labels folded into the name)."""
        url = f"http://127.0.0.1:{self.port}/metrics"
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        with urllib.request.urlopen(
            urllib.request.Request(url, headers=headers), timeout=5
        ) as response:
            text = response.read().decode()
        samples = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                samples[name] = float(value)
        return samples
