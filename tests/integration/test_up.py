"""`fulmen up` in a reduced size, as a user runs it: one command starts the broker, the store
server, a stream worker, the policy server, the scheduler and an agent as processes (a tiny
model built from a config, a task it learns in seconds, windows of 24 episodes, SFT, free
ports). Each stage is checked through the services' own interfaces: episodes in the store
(through the store server), a trainer job's version on the control topic and in the store,
the adapter listed by the policy server, the agent's later calls asking for it; then SIGINT
stops everything, and no process of the stack is left."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from pydantic import SecretStr

from fulmen.models import tiny_model_dir
from fulmen.schemas import (
    ControlEvent,
    ReleaseDecision,
    ServingAck,
    SingleObjectCodec,
    VersionEvent,
)
from fulmen.store import LightningStore, StoreSettings
from fulmen.up import group_alive
from tests.support.stack import wait_for

pytestmark = pytest.mark.timeout(900)  # minutes on 2 shared cores: six services and a job

_SERVICES = ["kafka", "store", "worker", "policy", "scheduler", "rollout", "agent-1"]
_AGENT = "calculator"
_STORE_PASSWORD = "up-test-secret"


def _up_env(tmp_path: Path) -> dict[str, str]:
    train = {"FULMEN_TRAIN_SFT__LEARNING_RATE": "3e-3", "FULMEN_TRAIN_SFT__EPOCHS": "8",
             "FULMEN_TRAIN_SFT__BATCH_SIZE": "8",
             "FULMEN_TRAIN_GATE__BATCH_SIZE": "12"}  # fmt: skip
    model = tiny_model_dir(tmp_path / "tiny", seed=3)
    up = {
        "DIR": str(tmp_path / "up"), "KAFKA_PORT": "0", "STORE_PORT": "0", "WORKER_PORT": "0",
        "POLICY_PORT": "0", "PARTITIONS": "2", "MODEL": str(model),
        "TASK": "tests.support.tasks:DigitTask", "ALGO": "sft", "WINDOW_EPISODES": "24",
        "HELDOUT_TASKS": "12", "TEMPERATURE": "1.0", "MAX_TOKENS": "8",
        "TRAIN_ENV": json.dumps(train), "READY_TIMEOUT_S": "180",
    }  # fmt: skip
    others = {
        "FULMEN_WORKER_GRACE_S": "1",
        "FULMEN_SCHEDULER_POLL_SECONDS": "1",
        "FULMEN_SCHEDULER_WINDOW__SETTLE_SECONDS": "2",
        "FULMEN_SCHEDULER_RETRIES": "0",
        "FULMEN_STORE__PASSWORD": _STORE_PASSWORD,
        "FULMEN_RELEASE__MIN_EPISODES": "4",
        "FULMEN_RELEASE__MAX_EPISODES": "8",  # a verdict before the next window's canary
        "FULMEN_RELEASE__INTERVAL_S": "2",
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("FULMEN_")}
    return env | {f"FULMEN_UP_{k}": v for k, v in up.items()} | others


def _versions(bootstrap: str) -> list[VersionEvent]:
    """Every version on the control topic so far."""
    return [event for event in _control(bootstrap) if isinstance(event, VersionEvent)]


def _decisions(bootstrap: str) -> list[ReleaseDecision]:
    return [event for event in _control(bootstrap) if isinstance(event, ReleaseDecision)]


def _control(bootstrap: str) -> list[ControlEvent]:
    """Every event on the control topic so far."""
    topic = "fulmen.control"
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "test-up",
                         "enable.auto.commit": False, "enable.partition.eof": True})  # fmt: skip
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    codec, found = SingleObjectCodec(), []
    try:
        while (message := consumer.poll(10)) is not None and message.error() is None:
            event = codec.decode(message.value() or b"", topic=topic)
            assert isinstance(event, VersionEvent | ReleaseDecision | ServingAck)
            found.append(event)
    finally:
        consumer.close()
    return found


def test_fulmen_up_runs_the_loop_as_processes_and_stops_them(tmp_path: Path) -> None:
    up_dir = tmp_path / "up"
    output = tmp_path / "up.out"
    with output.open("wb") as out:
        up = subprocess.Popen(
            [sys.executable, "-m", "fulmen.cli", "up", "--fresh"], env=_up_env(tmp_path),
            stdout=out, stderr=subprocess.STDOUT, cwd=Path(__file__).parents[2],
        )  # fmt: skip
    state_file = up_dir / "state.json"
    services: list[dict[str, Any]] = []
    try:
        wait_for(lambda: state_file.exists() or up.poll() is not None, timeout_s=300,
                 what="fulmen up to start its services")  # fmt: skip
        assert up.poll() is None, output.read_text()
        state: dict[str, Any] = json.loads(state_file.read_text())
        services = state["services"]
        assert [s["name"] for s in services] == _SERVICES
        assert all(s["pid"] for s in services)
        assert {Path(s["log"]) for s in services} == {
            up_dir / "logs" / f"{name}.log" for name in _SERVICES
        }
        text = output.read_text()
        assert all(name in text for name in _SERVICES)
        assert state["policy_url"] in text

        # The agent's episodes reach the store, through Kafka and the worker.
        store = LightningStore(
            StoreSettings(url=state["store_url"], password=SecretStr(_STORE_PASSWORD))
        )
        db = store.settings.database

        def count(sql: str) -> int:
            return int(store.sql(sql, {"agent": _AGENT}).to_pylist()[0]["n"])

        episodes = f"SELECT count() AS n FROM {db}.episodes WHERE agent_name = {{agent:String}}"
        wait_for(lambda: count(episodes) >= 24, timeout_s=180, what="a window of episodes")

        # The scheduler starts a job on the window; the job publishes on the control topic.
        wait_for(lambda: bool(_versions(state["kafka"])), timeout_s=300, what="a version")
        [version, *_] = _versions(state["kafka"])
        assert (version.target_agent, version.algorithm) == (_AGENT, "sft")
        assert version.traffic_share == 0.5  # a canary: `fulmen rollout` decides it
        runs = store.sql(
            f"SELECT outcome, candidate_version FROM {db}.training_runs ORDER BY started_at"
        ).to_pylist()
        assert runs[0] == {"outcome": "published", "candidate_version": version.version_id}
        [row] = store.sql(
            f"SELECT model_name FROM {db}.versions WHERE version_id = {{v:String}}",
            {"v": version.version_id},
        ).to_pylist()  # the job wrote it: the next job's parent
        assert row["model_name"] == version.model_name
        jobs = list((up_dir / "logs" / "jobs").glob("*.log"))
        assert "heldout_reward" in jobs[0].read_text()

        # The policy server loaded the adapter; the agent's later calls ask for it. It takes
        # the stack's key only.
        key = Path(state["api_key_file"]).read_text().strip()
        auth = {"authorization": f"Bearer {key}"}
        assert httpx.get(f"{state['policy_url']}/models", timeout=5).status_code == 401

        def served() -> list[str]:
            reply = httpx.get(f"{state['policy_url']}/models", headers=auth, timeout=5)
            return [model["id"] for model in reply.json()["data"]]

        wait_for(lambda: version.model_name in served(), timeout_s=60, what="the adapter")
        swapped = (
            f"SELECT count() AS n FROM {db}.triplets WHERE agent_name = {{agent:String}} "
            f"AND request_model = '{version.model_name}' "
            f"AND model_version = '{version.version_id}'"
        )
        wait_for(lambda: count(swapped) > 0, timeout_s=120, what="calls to the new version")

        # The release controller decides the canary from the episodes of both arms.
        def decided() -> list[ReleaseDecision]:
            found = [d for d in _decisions(state["kafka"]) if d.action != "hold"]
            return [d for d in found if d.version_id == version.version_id]

        wait_for(lambda: bool(decided()), timeout_s=240, what="a release decision")
        [decision] = decided()
        assert decision.automatic
        assert [arm.version_id for arm in decision.arms] == [version.version_id, ""]
        kept = store.sql(
            f"SELECT action FROM {db}.release_decisions WHERE event_id = {{e:String}}",
            {"e": decision.meta.event_id},
        ).to_pylist()
        assert kept == [{"action": decision.action}]
        store.close()
    finally:
        up.send_signal(signal.SIGINT)
        code = up.wait(180)
    text = output.read_text()
    print(text)  # shown when an assertion fails
    assert code == 0
    # Every service was stopped with whatever it started (each led its own process group).
    assert not [s["name"] for s in services if group_alive(s["pid"])]
    assert not state_file.exists()
    assert all(f"stopping {name}" in text for name in _SERVICES)
    logs = sorted(p.name for p in (up_dir / "logs").glob("*.log"))
    assert logs == sorted(f"{name}.log" for name in _SERVICES)
    assert all((up_dir / "logs" / name).stat().st_size > 0 for name in logs)
