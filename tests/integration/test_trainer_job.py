"""A trainer job end to end on a tiny model, CPU only: an instrumented agent talks to the
policy server, its episodes reach the store through the embedded runner, the job trains
on the window, gates the candidate, publishes it on the control topic, the server loads
the adapter and the agent's next calls use (and are stamped with) the new version."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import openai
import pytest

import fulmen
from fulmen.models import tiny_model_dir
from fulmen.producers import FulmenSettings, InProcessBus, publish_version
from fulmen.schemas import VersionEvent
from fulmen.serving import PolicyServer, serve_in_thread
from fulmen.store import LightningStore
from fulmen.streams import AssemblyPolicy, EmbeddedRunner
from fulmen.trainers import GateSettings, RlSettings, SftSettings, TrainSettings, run_job
from tests.support.digit_agent import answer
from tests.support.tasks import DigitTask

TASK = DigitTask()


@dataclass
class Loop:
    bus: InProcessBus
    store: LightningStore
    runner: EmbeddedRunner
    server: PolicyServer
    client: openai.OpenAI
    base: Path
    tmp: Path

    def agent_rollouts(self, rounds: int, tasks: int = 6) -> None:
        for seed, case in enumerate(TASK.training(tasks, seed=1) * rounds):
            answer(self.client, case.task_id, list(case.messages), self.server.name, seed)
        fulmen.get_producer().flush(10)
        self.runner.step()
        self.runner.finish()

    def job(self, algo: str, **overrides: object) -> TrainSettings:
        options: dict[str, object] = {
            "algo": algo,
            "agent_name": "digits",
            "task": "tests.support.tasks:DigitTask",
            "base_model": str(self.base),
            "artifacts_dir": self.tmp / "artifacts",
            "snapshots_dir": self.tmp / "windows",
            "gate": GateSettings(heldout_tasks=12, max_new_tokens=8, batch_size=12),
            "sft": SftSettings(learning_rate=3e-3, epochs=8, batch_size=8),
            "rl": RlSettings(learning_rate=3e-3, epochs=4, batch_size=16),
        }
        return TrainSettings(**(options | overrides))  # type: ignore[arg-type]


@pytest.fixture
def loop(tmp_path: Path, new_store: Callable[[], LightningStore]) -> Iterator[Loop]:
    base = tiny_model_dir(tmp_path / "tiny", seed=3)
    server = PolicyServer(base, model_roots=[tmp_path / "artifacts"])
    bus = InProcessBus()
    store = new_store()
    settings = FulmenSettings(
        producer={"agent_name": "digits", "spill_dir": tmp_path / "spill",
                  "request_token_ids": True},
    )  # fmt: skip
    fulmen.configure(settings, bus=bus)
    fulmen.on_version(lambda r: server.load_adapter(r.model_name, Path(r.artifact_uri)))
    runner = EmbeddedRunner(bus, store, policy=AssemblyPolicy(grace_s=0.0))
    with serve_in_thread(server) as url:
        client = openai.OpenAI(base_url=url, api_key="local")
        yield Loop(bus, store, runner, server, client, base, tmp_path)
    fulmen.shutdown()


def _publish_on(bus: InProcessBus) -> tuple[list[VersionEvent], object]:
    published: list[VersionEvent] = []

    def publish(event: VersionEvent) -> None:
        published.append(event)
        publish_version(event, bus=bus)

    return published, publish


CUSTOM = "examples.algorithms.above_median:AboveMedianCloning"


@pytest.mark.parametrize("algo", ["sft", "rl", CUSTOM])
def test_window_to_trained_version_used_by_the_agent(loop: Loop, algo: str) -> None:
    loop.agent_rollouts(rounds=4)
    published, publish = _publish_on(loop.bus)

    result = run_job(loop.job(algo), store=loop.store, publish=publish)  # type: ignore[arg-type]

    assert result.outcome == "published", result.reason
    assert result.episodes == 24
    assert result.metrics["heldout_reward"] >= result.metrics["heldout_reward_parent"]
    [event] = published
    assert event.parent_version is None
    assert event.algorithm == ("sft" if algo == CUSTOM else algo)
    assert event.window_id == result.window_id
    assert event.dataset_hash == result.dataset_hash
    assert (Path(event.artifact_uri or "") / "adapter_config.json").is_file()
    assert fulmen.wait_for_version(event.version_id, timeout_s=10)
    assert event.model_name in {m.name for m in loop.server.models()}

    loop.agent_rollouts(rounds=1, tasks=2)
    db = loop.store.settings.database
    rows = loop.store.sql(
        f"SELECT request_model, model_version FROM {db}.triplets "
        "WHERE model_version = {v:String}",
        {"v": event.version_id},
    ).to_pylist()
    assert len(rows) == 2
    assert {r["request_model"] for r in rows} == {event.model_name}
    runs = loop.store.sql(f"SELECT outcome FROM {db}.training_runs").to_pylist()
    assert runs == [{"outcome": "published"}]


def test_a_failed_gate_is_recorded_and_publishes_nothing(loop: Loop) -> None:
    loop.agent_rollouts(rounds=4)
    published, publish = _publish_on(loop.bus)
    impossible = GateSettings(heldout_tasks=12, max_new_tokens=8, batch_size=12, min_gain=2.0)

    result = run_job(loop.job("sft", gate=impossible), store=loop.store, publish=publish)  # type: ignore[arg-type]

    assert result.outcome == "gate_failed"
    assert "fails" in result.reason
    assert published == []
    assert result.version is None
    db = loop.store.settings.database
    runs = loop.store.sql(f"SELECT outcome, reason FROM {db}.training_runs").to_pylist()
    assert [r["outcome"] for r in runs] == ["gate_failed"]
    versions = loop.store.sql(f"SELECT count() AS n FROM {db}.versions").to_pylist()
    assert versions == [{"n": 0}]
