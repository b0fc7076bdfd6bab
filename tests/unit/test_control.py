"""Versions on the in-process bus: publishing, the version in force at start, targeting,
hot-swap, rollback, events stamped after a swap, prompts, callbacks, bad control messages."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import openai
import pytest

import fulmen
from fulmen.producers import (
    CONTROL_KEY,
    FulmenSettings,
    InProcessBus,
    Producer,
    Resources,
    VersionNotInForce,
    VersionNotPublished,
    publish_version,
    start_following,
    transport_for,
    version_meta,
)
from fulmen.producers._openai import uninstrument_openai
from fulmen.schemas import Event, SingleObjectCodec
from tests.support.events import all_events, version_event
from tests.support.openai_server import OpenAIServer

CONTROL = "fulmen.control"
DOCS = Path(__file__).resolve().parents[2] / "docs"


def settings_for(tmp_path: Path, agent: str, **producer: object) -> FulmenSettings:
    return FulmenSettings(
        producer={
            "spill_dir": tmp_path / "spill",
            "agent_name": agent,
            "capture_openai": False,
            "model_version": "base",
            **producer,
        }
    )


Agent = Callable[..., FulmenSettings]


@pytest.fixture
def bus() -> InProcessBus:
    return InProcessBus()


@pytest.fixture
def agent(bus: InProcessBus, tmp_path: Path) -> Iterator[Agent]:
    """`agent(name, **producer_settings)`: the process-wide producer for agent `name` on `bus`."""

    def start(name: str = "calc", **producer: object) -> FulmenSettings:
        settings = settings_for(tmp_path, name, **producer)
        fulmen.configure(settings, bus=bus)
        return settings

    yield start
    fulmen.shutdown()


def emitted(bus: InProcessBus) -> list[Event]:
    assert fulmen.get_producer().flush(5)
    codec = SingleObjectCodec()
    return sorted(
        (
            codec.decode(m.value, topic=topic)
            for topic in ("fulmen.spans", "fulmen.rewards", "fulmen.rollouts")
            for m in bus.read(topic, 0, max_messages=10_000, timeout_s=0)
        ),
        key=lambda e: e.meta.sequence,
    )


@fulmen.rollout(task_id="2+2")
def solve() -> int:
    fulmen.emit_reward(1.0)
    return 4


def test_publish_puts_the_version_on_the_control_topic_under_one_key(bus: InProcessBus) -> None:
    event = version_event("m1", target="calc")
    publish_version(event, FulmenSettings(), bus=bus)
    (message,) = bus.read(CONTROL, 0, max_messages=10, timeout_s=0)
    assert message.key == CONTROL_KEY
    assert SingleObjectCodec().decode(message.value, topic=CONTROL) == event


def test_publish_without_a_bus_or_an_agent_refuses() -> None:
    with pytest.raises(VersionNotPublished, match="needs a bus"):
        publish_version(version_event("m1"), FulmenSettings())


def test_publish_from_an_agent_process_uses_its_bus(agent: Agent, bus: InProcessBus) -> None:
    agent()
    publish_version(version_event("m1"))
    assert len(bus.read(CONTROL, 0, max_messages=10, timeout_s=0)) == 1


def test_the_version_in_force_is_found_among_several(agent: Agent, bus: InProcessBus) -> None:
    for event in (
        version_event("m1"),
        version_event("p1", "prompt", templates={"system": "one"}),
        version_event("m2", target="calc"),
        version_event("m3", target="other"),  # later, but not for this agent
        version_event("p2", "prompt", target="calc", templates={"system": "two"}),
    ):
        publish_version(event, FulmenSettings(), bus=bus)
    agent("calc")  # returns once the topic is read: no waiting needed
    now = fulmen.resources()
    assert (now.model_version, now.resources_version) == ("m2", "p2")
    assert now.model_name == "m2-name"
    assert now.artifact_uri == "s3://models/m2"
    assert dict(now.prompt_templates) == {"system": "two"}
    assert now.model_event is not None
    assert now.model_event.version_id == "m2"


def test_no_version_yet_keeps_the_settings_versions(agent: Agent) -> None:
    agent("calc", resources_version="r0")
    assert fulmen.resources() == Resources(model_version="base", resources_version="r0")
    assert fulmen.prompt("system", "default text") == "default text"


def test_targeted_versions_touch_only_their_agent(bus: InProcessBus, tmp_path: Path) -> None:
    producers = {
        name: Producer(
            settings_for(tmp_path / name, name), transport=transport_for(FulmenSettings(), bus=bus)
        )
        for name in ("a", "b")
    }
    followers = [start_following(p) for p in producers.values()]
    try:
        for follower in followers:
            assert follower is not None
            assert follower.wait_caught_up(5)
        publish_version(version_event("a-2", target="a"), FulmenSettings(), bus=bus)
        publish_version(version_event("all-3", "prompt"), FulmenSettings(), bus=bus)
        a, b = producers["a"].versions, producers["b"].versions
        a.wait_for("all-3", 5)
        b.wait_for("all-3", 5)
        assert (a.current.model_version, a.current.resources_version) == ("a-2", "all-3")
        assert (b.current.model_version, b.current.resources_version) == ("base", "all-3")
    finally:
        for follower in followers:
            assert follower is not None
            follower.stop()
        for producer in producers.values():
            producer.close()


def test_rollback_is_publishing_an_older_version_again(agent: Agent, bus: InProcessBus) -> None:
    agent()
    first = version_event("m1")
    publish_version(first)
    fulmen.wait_for_version("m1", 5)
    publish_version(version_event("m2"))
    fulmen.wait_for_version("m2", 5)
    publish_version(first.model_copy(update={"meta": version_meta()}))
    assert fulmen.wait_for_version("m1", 5).model_name == "m1-name"
    agent()  # a restarted agent agrees: topic order wins, not version-id order
    assert fulmen.resources().model_version == "m1"


def test_events_after_a_swap_carry_the_new_ids(agent: Agent, bus: InProcessBus) -> None:
    agent()
    solve()
    publish_version(version_event("m2"))
    publish_version(version_event("p2", "prompt"))
    fulmen.wait_for_version("p2", 5)
    assert fulmen.resources().model_version == "m2"
    solve()
    events = emitted(bus)
    assert len(events) == 8  # started, reward, root span, finished; twice
    before, after = events[:4], events[4:]
    assert {(e.meta.model_version, e.meta.resources_version) for e in before} == {("base", "")}
    assert {(e.meta.model_version, e.meta.resources_version) for e in after} == {("m2", "p2")}


def test_prompt_and_on_version(agent: Agent, bus: InProcessBus) -> None:
    seen: list[Resources] = []
    agent()
    remove = fulmen.on_version(seen.append)
    try:
        assert fulmen.prompt("system", "mine") == "mine"
        publish_version(version_event("p1", "prompt", templates={"system": "theirs"}))
        fulmen.wait_for_version("p1", 5)  # callbacks have run by then
        assert fulmen.prompt("system", "mine") == "theirs"
        assert fulmen.prompt("other", "mine") == "mine"
        assert [r.resources_version for r in seen] == ["p1"]
        publish_version(version_event("p2", "prompt", target="someone-else"))
        publish_version(version_event("m1"))
        fulmen.wait_for_version("m1", 5)
        assert [(r.model_version, r.resources_version) for r in seen] == [
            ("base", "p1"),
            ("m1", "p1"),
        ]
    finally:
        remove()
    publish_version(version_event("m2"))
    fulmen.wait_for_version("m2", 5)
    assert len(seen) == 2


def test_on_version_outlives_configure_and_survives_a_failing_callback(
    agent: Agent, bus: InProcessBus, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[str] = []

    def broken(resources: Resources) -> None:
        raise RuntimeError("agent bug")

    remove_broken = fulmen.on_version(broken)
    remove = fulmen.on_version(lambda r: seen.append(r.model_version))
    try:
        publish_version(version_event("m1"), FulmenSettings(), bus=bus)
        agent()  # the version already there is applied: one swap, callbacks told
        publish_version(version_event("m2"))
        fulmen.wait_for_version("m2", 5)
    finally:
        remove_broken()
        remove()
    assert seen == ["m1", "m2"]
    assert "on_version callback" in caplog.text


def test_resources_are_immutable(agent: Agent) -> None:
    agent()
    publish_version(version_event("p1", "prompt", templates={"system": "x"}))
    now = fulmen.wait_for_version("p1", 5)
    with pytest.raises(TypeError):
        now.prompt_templates["system"] = "y"  # type: ignore[index]
    with pytest.raises(AttributeError):
        now.model_version = "hacked"  # type: ignore[misc]


def test_undecodable_control_messages_are_skipped(
    agent: Agent, bus: InProcessBus, caplog: pytest.LogCaptureFixture
) -> None:
    bus.append(CONTROL, CONTROL_KEY, b"not avro at all")
    publish_version(version_event("m1"), FulmenSettings(), bus=bus)
    bus.append(CONTROL, CONTROL_KEY, b"\xc3\x01" + b"\x00" * 8)
    caplog.set_level(logging.WARNING, logger="fulmen.producers")
    agent()
    assert fulmen.resources().model_version == "m1"
    bus.append(CONTROL, CONTROL_KEY, b"\xc3\x01\x01")
    codec = SingleObjectCodec()
    (reward,) = [e for e in all_events() if e.event_type == "reward"]
    bus.append(CONTROL, CONTROL_KEY, codec.encode(reward, topic=CONTROL))  # not a version
    publish_version(version_event("m2"))
    fulmen.wait_for_version("m2", 5)  # the follower lived on
    warnings = [r.getMessage() for r in caplog.records if "control" in r.getMessage()]
    assert len(warnings) == 4
    assert "bad_magic" in warnings[0]
    assert "fulmen.control[0]@0" in warnings[0]


def test_wait_for_version_times_out(agent: Agent) -> None:
    agent()
    with pytest.raises(VersionNotInForce, match=r"'m9' not in force after 0\.05 s"):
        fulmen.wait_for_version("m9", 0.05)
    with pytest.raises(TimeoutError):
        fulmen.wait_for_version("m9", 0.01)


def test_following_can_be_turned_off(agent: Agent, bus: InProcessBus) -> None:
    publish_version(version_event("m1"), FulmenSettings(), bus=bus)
    agent(follow_versions=False)
    publish_version(version_event("m2"))
    with pytest.raises(VersionNotInForce):
        fulmen.wait_for_version("m2", 0.3)
    assert fulmen.resources().model_version == "base"


def test_swaps_are_atomic_for_concurrent_readers(agent: Agent) -> None:
    """Model and prompt versions published together (one batch) are never seen half-applied."""
    agent()
    stop = threading.Event()
    torn: list[tuple[str, str]] = []

    def reader() -> None:
        while not stop.is_set():
            meta = fulmen.get_producer().meta("r", 1)
            pair = (meta.model_version, meta.resources_version)
            if pair[0].removeprefix("m") != pair[1].removeprefix("p") and pair != ("base", ""):
                torn.append(pair)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        state = fulmen.get_producer().versions
        for i in range(200):
            state.apply([version_event(f"m{i}"), version_event(f"p{i}", "prompt")])
    finally:
        stop.set()
        thread.join()
    assert torn == []
    assert fulmen.resources().model_version == "m199"


def test_openai_calls_follow_the_model_version_when_asked(agent: Agent, bus: InProcessBus) -> None:
    agent(capture_openai=True, openai_model_from_version=True)
    try:
        with OpenAIServer() as server:
            client = openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0)

            def ask() -> None:
                client.chat.completions.create(
                    model="calc", messages=[{"role": "user", "content": "2 + 2"}]
                )

            ask()  # no model version yet: the agent's own model
            publish_version(version_event("calc-v2"))
            fulmen.wait_for_version("calc-v2", 5)
            with fulmen.rollout(task_id="2+2"):
                ask()
        assert [r["model"] for r in server.requests] == ["calc", "calc-v2-name"]
        (span,) = [e for e in emitted(bus) if getattr(e, "llm", None) is not None]
        assert span.meta.model_version == "calc-v2"
    finally:
        uninstrument_openai()


def test_the_example_in_versions_md_runs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    blocks = re.findall(r"```python\n(.*?)```", (DOCS / "versions.md").read_text(), re.DOTALL)
    try:
        exec(compile(blocks[0], "docs/versions.md", "exec"), {"__name__": "docs_example"})
    finally:
        fulmen.shutdown()
    assert capsys.readouterr().out.splitlines() == [
        "calc-prompt-2 You are a careful calculator. Answer with a number.",
        "swapped to calc-prompt-3",
        "calc-prompt-2",
    ]
