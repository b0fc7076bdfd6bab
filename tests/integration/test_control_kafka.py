"""Versions through a real Kafka broker: a trainer publishes, agents (threads of this
process) swap and stamp their next events, new agents start with the version in force,
rollback, targeting, bad control messages, a missing control topic, an unreachable broker."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from confluent_kafka import Producer as RawProducer

import fulmen
from fulmen.kafka import Consumed, EventConsumer, KafkaSettings, create_topics
from fulmen.producers import (
    CONTROL_KEY,
    FulmenSettings,
    Producer,
    VersionNotPublished,
    publish_version,
    start_following,
    transport_for,
    version_meta,
)
from fulmen.schemas import Event
from tests.support.events import version_event

pytestmark = pytest.mark.integration


@pytest.fixture
def prefix(bootstrap_servers: str) -> str:
    """Fresh topics per test, the control topic included, created with 4 partitions."""
    name = f"v{uuid.uuid4().hex[:8]}."
    topics = FulmenSettings(topics={"prefix": name}).topics
    create_topics(KafkaSettings(bootstrap_servers=bootstrap_servers), topics.event_topics())
    return name


def settings_for(
    bootstrap: str, prefix: str, spill: Path | None = None, agent: str = "calc"
) -> FulmenSettings:
    producer: dict[str, object] = {
        "agent_name": agent,
        "capture_openai": False,
        "linger_ms": 5,
        "model_version": "base",
    }
    if spill is not None:
        producer["spill_dir"] = spill
    return FulmenSettings(
        transport="kafka",
        kafka={"bootstrap_servers": bootstrap},
        topics={"prefix": prefix},
        producer=producer,
    )


@pytest.fixture
def trainer(bootstrap_servers: str, prefix: str) -> FulmenSettings:
    """A trainer job's settings: the same cluster and topics, no agent anywhere near."""
    return settings_for(bootstrap_servers, prefix)


StartAgent = Callable[..., FulmenSettings]


@pytest.fixture
def start_agent(bootstrap_servers: str, prefix: str, tmp_path: Path) -> Iterator[StartAgent]:
    """`start_agent(name)`: (re)configures the process-wide producer as agent `name`."""

    def start(name: str = "calc") -> FulmenSettings:
        settings = settings_for(bootstrap_servers, prefix, tmp_path / "spill", name)
        fulmen.configure(settings)
        return settings

    yield start
    fulmen.shutdown()


@fulmen.rollout(task_id="2+2")
def solve() -> int:
    fulmen.emit_reward(1.0)
    return 4


def consume(bootstrap: str, topics: list[str], expected: int) -> list[Consumed]:
    consumer = EventConsumer(
        KafkaSettings(bootstrap_servers=bootstrap), topics, group_id=uuid.uuid4().hex
    )
    received: list[Consumed] = []
    deadline = time.monotonic() + 60
    try:
        while len(received) < expected and time.monotonic() < deadline:
            received.extend(consumer.poll(max_messages=1000, timeout_s=0.5))
    finally:
        consumer.close()
    return received


def test_published_version_is_swapped_in_and_stamps_the_next_events(
    bootstrap_servers: str, trainer: FulmenSettings, start_agent: StartAgent
) -> None:
    started = time.monotonic()
    settings = start_agent("calc")
    configure_s = time.monotonic() - started
    solve()

    published = time.monotonic()
    publish_version(version_event("calc-v2", target="calc"), trainer)
    acknowledged = time.monotonic()
    now = fulmen.wait_for_version("calc-v2", timeout_s=10)
    swapped = time.monotonic()
    assert now.model_name == "calc-v2-name"
    assert swapped - published < 5
    solve()
    assert fulmen.get_producer().flush(30)
    print(
        f"configure {configure_s:.3f}s, publish (acks=all) {acknowledged - published:.3f}s, "
        f"acknowledged -> swapped {swapped - acknowledged:.3f}s"
    )

    topics = [settings.topics.for_event(t) for t in ("rollout", "reward", "span")]
    received = consume(bootstrap_servers, topics, 8)
    events: list[Event] = sorted(
        (c.event for c in received if not isinstance(c.event, Exception)),
        key=lambda e: e.meta.sequence,
    )
    assert len(events) == 8  # started, reward, root span, finished: before and after
    assert {e.meta.model_version for e in events[:4]} == {"base"}
    assert {e.meta.model_version for e in events[4:]} == {"calc-v2"}

    control = consume(bootstrap_servers, [settings.topics.for_event("version")], 1)
    assert [(c.key, c.event) for c in control] == [(CONTROL_KEY, now.model_event)]


def test_a_new_agent_starts_with_the_version_in_force(
    bootstrap_servers: str, trainer: FulmenSettings, start_agent: StartAgent, tmp_path: Path
) -> None:
    raw = RawProducer({"bootstrap.servers": bootstrap_servers})
    control = trainer.topics.for_event("version")
    publish_version(version_event("m1"), trainer)
    publish_version(version_event("p1", "prompt", templates={"system": "one"}), trainer)
    raw.produce(control, b"not a version at all", CONTROL_KEY)
    assert raw.flush(30) == 0
    publish_version(version_event("m2", target="calc"), trainer)
    publish_version(version_event("m3", target="other"), trainer)
    publish_version(
        version_event("p2", "prompt", target="calc", templates={"system": "two"}), trainer
    )

    start_agent("calc")  # returns once the topic is read: no waiting for a version
    now = fulmen.resources()
    assert (now.model_version, now.resources_version) == ("m2", "p2")
    assert fulmen.prompt("system", "mine") == "two"

    other = Producer(
        settings_for(bootstrap_servers, trainer.topics.prefix, tmp_path / "other", "other"),
        transport=transport_for(trainer),
    )
    follower = start_following(other)
    assert follower is not None
    try:
        assert follower.wait_caught_up(10)
        theirs = other.versions.current
        assert (theirs.model_version, theirs.resources_version) == ("m3", "p1")
    finally:
        follower.stop()
        other.close()


def test_rollback_is_publishing_the_older_version_again(
    trainer: FulmenSettings, start_agent: StartAgent
) -> None:
    start_agent("calc")
    good = version_event("calc-v1")
    publish_version(good, trainer)
    fulmen.wait_for_version("calc-v1", timeout_s=10)
    publish_version(version_event("calc-v2"), trainer)
    fulmen.wait_for_version("calc-v2", timeout_s=10)
    publish_version(good.model_copy(update={"meta": version_meta()}), trainer)
    assert fulmen.wait_for_version("calc-v1", timeout_s=10).model_name == "calc-v1-name"
    start_agent("calc")  # restarted: topic order wins, not version-id order
    assert fulmen.resources().model_version == "calc-v1"


def test_an_agent_started_before_the_control_topic_exists_finds_it_later(
    bootstrap_servers: str, tmp_path: Path
) -> None:
    prefix = f"late{uuid.uuid4().hex[:8]}."  # no topics created: publishing creates it
    fulmen.configure(settings_for(bootstrap_servers, prefix, tmp_path / "spill"))
    try:
        assert fulmen.resources().model_version == "base"
        publish_version(version_event("m1"), settings_for(bootstrap_servers, prefix))
        fulmen.wait_for_version("m1", timeout_s=20)
    finally:
        fulmen.shutdown()


def test_publish_raises_when_the_broker_does_not_acknowledge(tmp_path: Path) -> None:
    unreachable = settings_for("127.0.0.1:9", "nowhere.")
    started = time.monotonic()
    with pytest.raises(VersionNotPublished, match="not delivered"):
        publish_version(version_event("m1"), unreachable, timeout_s=1.0)
    assert time.monotonic() - started < 6
