"""The model servers' controllers against a real broker and real policy servers: two
replicas load the versions the control topic needs and acknowledge them; an agent that
awaits both replicas switches only once both acknowledged; an adapter no version needs any
more is unloaded by both after the grace period and acknowledged `unloaded`; a load the
server refuses is acknowledged `failed` with its reason."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from peft import LoraConfig, get_peft_model

import fulmen
from fulmen.kafka import KafkaSettings, create_topics
from fulmen.models import load_policy, tiny_model_dir
from fulmen.producers import (
    FulmenSettings,
    KafkaControlReader,
    ReleaseBoard,
    codec_for,
    decode_control,
    publish_version,
)
from fulmen.serving import AdapterFollower, PolicyServer, serve_in_thread
from tests.support.events import version_event

pytestmark = pytest.mark.integration

_TIMEOUT_S = 60.0


def _adapter(base: Path, out: Path) -> str:
    model, _ = load_policy(base)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        get_peft_model(model, config).save_pretrained(out)
    return str(out)


class _Watcher:
    """The control topic as the test sees it: a `ReleaseBoard` folded up to a condition."""

    def __init__(self, settings: FulmenSettings) -> None:
        self.board = ReleaseBoard()
        self._topic = settings.topics.for_event("version")
        self._reader = KafkaControlReader(settings.kafka, self._topic)
        self._codec = codec_for(settings)

    def until(self, condition: Callable[[ReleaseBoard], bool], what: str) -> None:
        deadline = time.monotonic() + _TIMEOUT_S
        while not condition(self.board):
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            for message in self._reader.read(0.2):
                event = decode_control(self._codec, self._topic, message)
                if event is not None:
                    self.board.apply(event)

    def close(self) -> None:
        self._reader.close()


def _wait(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + _TIMEOUT_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.fixture
def trainer(bootstrap_servers: str) -> FulmenSettings:
    """Fresh topics; the settings a trainer job publishes with."""
    settings = FulmenSettings(
        transport="kafka", kafka={"bootstrap_servers": bootstrap_servers},
        topics={"prefix": f"a{uuid.uuid4().hex[:8]}."},
    )  # fmt: skip
    create_topics(
        KafkaSettings(bootstrap_servers=bootstrap_servers), settings.topics.event_topics()
    )
    return settings


@pytest.fixture
def watcher(trainer: FulmenSettings) -> Iterator[_Watcher]:
    watching = _Watcher(trainer)
    yield watching
    watching.close()


@contextlib.contextmanager
def _replica(base: Path, roots: list[Path]) -> Iterator[tuple[PolicyServer, str]]:
    server = PolicyServer(base, name="base", model_roots=roots)
    with serve_in_thread(server) as url:
        yield server, url


def test_agents_switch_once_every_replica_loaded_and_unneeded_adapters_go(
    trainer: FulmenSettings, watcher: _Watcher, tmp_path: Path
) -> None:
    base = tiny_model_dir(tmp_path / "tiny", seed=3)
    adapter = _adapter(base, tmp_path / "adapter")
    v1 = version_event("v1", target="calc").model_copy(update={"artifact_uri": adapter})
    v2 = version_event("v2", target="calc").model_copy(update={"artifact_uri": adapter})
    agent = trainer.model_copy(
        update={
            "producer": trainer.producer.model_copy(
                update={
                    "agent_name": "calc",
                    "model_version": "base",
                    "capture_openai": False,
                    "spill_dir": tmp_path / "spill",
                    "await_replicas": 2,
                }
            )
        }
    )
    followers: list[AdapterFollower] = []

    def follow(url: str, replica_id: str) -> AdapterFollower:
        follower = AdapterFollower(url, trainer, replica_id=replica_id, unload_grace_s=1.0)
        followers.append(follower)
        follower.start()
        return follower

    fulmen.configure(agent)
    try:
        with _replica(base, [tmp_path]) as (a, url_a), _replica(base, [tmp_path]) as (b, url_b):
            follow(url_a, "policy-a")
            publish_version(v1, trainer)
            watcher.until(
                lambda board: board.loaded_replicas("v1-name", "default") == {"policy-a"},
                "policy-a to acknowledge v1",
            )
            # A prompt version published after the acknowledgement: once the agent applied
            # it, it has read v1 and policy-a's acknowledgement too.
            publish_version(version_event("p1", "prompt", templates={"system": "hi"}), trainer)
            fulmen.wait_for_version("p1", timeout_s=_TIMEOUT_S)
            assert fulmen.resources().model_version == "base"
            assert "v1-name" not in {m.name for m in b.models()}

            follow(url_b, "policy-b")
            assert fulmen.wait_for_version("v1", timeout_s=_TIMEOUT_S).model_name == "v1-name"
            both = {"policy-a", "policy-b"}
            watcher.until(lambda board: board.loaded_replicas("v1-name", "default") == both, "v1")

            publish_version(v2, trainer)
            assert fulmen.wait_for_version("v2", timeout_s=_TIMEOUT_S).model_name == "v2-name"
            watcher.until(
                lambda board: not board.loaded_replicas("v1-name", "default"),
                "both replicas to acknowledge v1 unloaded",
            )
            _wait(lambda: all(f.unloaded == ["v1-name"] for f in followers), "the unloads")
            for server in (a, b):
                assert {m.name for m in server.models()} == {"base", "v2-name"}
            assert watcher.board.loaded_replicas("v2-name", "default") == both
    finally:
        for follower in followers:
            follower.stop()
        fulmen.shutdown()
    assert [f.loaded for f in followers] == [["v1-name", "v2-name"]] * 2


def test_a_load_the_server_refuses_is_acknowledged_failed(
    trainer: FulmenSettings, watcher: _Watcher, tmp_path: Path
) -> None:
    base = tiny_model_dir(tmp_path / "tiny", seed=3)
    outside = _adapter(base, tmp_path / "elsewhere" / "adapter")
    bad = version_event("v1").model_copy(update={"artifact_uri": outside})
    with _replica(base, [tmp_path / "artifacts"]) as (server, url):
        # Settings that name no transport (`fulmen serve` with only FULMEN_KAFKA__*): the
        # acknowledgement still goes to the cluster the versions come from.
        settings = trainer.model_copy(update={"transport": "inprocess"})
        follower = AdapterFollower(url, settings, replica_id="policy-a", pool="gpu")
        follower.start()
        try:
            publish_version(bad, trainer)
            watcher.until(lambda board: board.failed_load("v1-name") is not None, "the failure")
        finally:
            follower.stop()
    ack = watcher.board.failed_load("v1-name")
    assert ack is not None
    assert (ack.replica_id, ack.pool, ack.version_id, ack.status) == (
        "policy-a",
        "gpu",
        "v1",
        "failed",
    )
    assert ack.detail is not None
    assert "path_not_allowed" in ack.detail
    assert follower.loaded == []
    assert {m.name for m in server.models()} == {"base"}
