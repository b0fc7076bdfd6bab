"""An APO job end to end on a tiny model, CPU only: an instrumented agent reads its system
prompt with `fulmen.prompt`, its episodes reach the store, the job beam-searches the prompt
with the policy server as both optimizer and target (OpenAI-compatible), gates the best
candidate, publishes a prompt version, and the agent's next calls use the new prompt."""

from __future__ import annotations

import zlib
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
from fulmen.trainers import ApoSettings, GateSettings, TrainSettings, prompt_in_force, run_job
from tests.support.tasks import CAPITALS_PROMPT, CapitalsTask

TASK = CapitalsTask()


@dataclass
class Loop:
    bus: InProcessBus
    store: LightningStore
    runner: EmbeddedRunner
    client: openai.OpenAI
    url: str
    model: str
    tmp: Path

    def agent_rollouts(self, tasks: int = 6) -> None:
        for case in TASK.training(tasks, seed=1):
            _answer(self.client, case.task_id, case.messages[-1]["content"], self.model)
        fulmen.get_producer().flush(10)
        self.runner.step()
        self.runner.finish()

    def job(self, *, min_gain: float) -> TrainSettings:
        apo = ApoSettings(
            optimizer_base_url=self.url, optimizer_model=self.model,
            target_base_url=self.url, target_model=self.model,
            beam_width=2, branch_factor=3, rounds=3, critique_examples=2, eval_tasks=3,
            max_tokens=12, score_max_tokens=8, max_example_chars=60, max_template_chars=200,
        )  # fmt: skip
        return TrainSettings(
            algo="apo", agent_name="capitals", task="tests.support.tasks:CapitalsTask",
            snapshots_dir=self.tmp / "windows", apo=apo,
            gate=GateSettings(heldout_tasks=4, min_gain=min_gain),
        )  # fmt: skip


@fulmen.rollout(task_id=lambda client, task_id, question, model: task_id)
def _answer(client: openai.OpenAI, task_id: str, question: str, model: str) -> str:
    reply = client.chat.completions.create(
        model=model,
        messages=[
            {"role": "system", "content": fulmen.prompt("system", CAPITALS_PROMPT)},
            {"role": "user", "content": question},
        ],
        max_tokens=8,
        temperature=1.0,
        seed=zlib.crc32(task_id.encode()),  # sampled, yet the same window every run
    )
    text = reply.choices[0].message.content or ""
    fulmen.emit_reward(TASK.reward(task_id, text))
    return text


@pytest.fixture
def loop(tmp_path: Path, new_store: Callable[[], LightningStore]) -> Iterator[Loop]:
    server = PolicyServer(tiny_model_dir(tmp_path / "tiny", seed=3))
    bus = InProcessBus()
    store = new_store()
    settings = FulmenSettings(producer={"agent_name": "capitals", "spill_dir": tmp_path / "spill"})
    fulmen.configure(settings, bus=bus)
    runner = EmbeddedRunner(bus, store, policy=AssemblyPolicy(grace_s=0.0))
    with serve_in_thread(server) as url:
        client = openai.OpenAI(base_url=url, api_key="local")
        yield Loop(bus, store, runner, client, url, server.name, tmp_path)
    fulmen.shutdown()


def _publish_on(bus: InProcessBus) -> tuple[list[VersionEvent], Callable[[VersionEvent], None]]:
    published: list[VersionEvent] = []

    def publish(event: VersionEvent) -> None:
        published.append(event)
        publish_version(event, bus=bus)

    return published, publish


def test_apo_publishes_the_best_prompt_and_the_agent_uses_it(loop: Loop) -> None:
    loop.agent_rollouts()
    published, publish = _publish_on(loop.bus)

    result = run_job(loop.job(min_gain=-1.0), store=loop.store, publish=publish)

    assert result.outcome == "published", result.reason
    assert result.episodes == 6
    metrics = result.metrics
    assert metrics["apo_candidates"] > 1
    assert metrics["apo_train_reward"] > metrics["apo_train_reward_parent"]
    assert {"heldout_reward", "heldout_reward_parent"} <= metrics.keys()
    [event] = published
    template = event.prompt_templates["system"]
    assert event.kind == "prompt"
    assert template
    assert template != CAPITALS_PROMPT
    assert event.algorithm == "apo"
    assert event.artifact_uri is None
    assert event.parent_version is None
    assert (event.window_id, event.dataset_hash) == (result.window_id, result.dataset_hash)

    assert fulmen.wait_for_version(event.version_id, timeout_s=10)
    assert fulmen.prompt("system", CAPITALS_PROMPT) == template
    loop.agent_rollouts(tasks=2)
    db = loop.store.settings.database
    rows = loop.store.sql(
        f"SELECT prompt FROM {db}.triplets WHERE resources_version = {{v:String}}",
        {"v": event.version_id},
    ).to_pylist()
    assert len(rows) == 2
    assert all(CAPITALS_PROMPT not in r["prompt"] for r in rows)
    runs = loop.store.sql(f"SELECT outcome, algorithm FROM {db}.training_runs").to_pylist()
    assert runs == [{"outcome": "published", "algorithm": "apo"}]
    in_force = prompt_in_force(loop.store, "capitals")  # the next APO job's parent
    assert in_force is not None
    assert in_force.version_id == event.version_id
    assert in_force.prompt_templates == {"system": template}


def test_apo_failed_gate_publishes_nothing(loop: Loop) -> None:
    loop.agent_rollouts()
    published, publish = _publish_on(loop.bus)

    result = run_job(loop.job(min_gain=2.0), store=loop.store, publish=publish)

    assert result.outcome == "gate_failed"
    assert "fails" in result.reason
    assert published == []
    assert result.version is None
    db = loop.store.settings.database
    runs = loop.store.sql(f"SELECT outcome FROM {db}.training_runs").to_pylist()
    assert runs == [{"outcome": "gate_failed"}]
    versions = loop.store.sql(f"SELECT count() AS n FROM {db}.versions").to_pylist()
    assert versions == [{"n": 0}]
