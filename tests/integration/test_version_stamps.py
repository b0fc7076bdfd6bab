"""Version stamps tell which version served each call: an agent that keeps its own model
while a version is published, one that follows versions, a rollout that straddles a swap,
and the store's reward by version computed from what each call was actually answered by."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import openai
import pytest

import fulmen
from fulmen.producers import FulmenSettings, InProcessBus, version_meta
from fulmen.schemas import VersionEvent
from fulmen.store import LightningStore
from fulmen.streams import AssemblyPolicy, EmbeddedRunner
from tests.support.openai_server import OpenAIServer

pytestmark = pytest.mark.integration

BASE = "calc-base"  # the settings' model version: the deployment before any version
BASE_MODEL = "smol-base"
VERSIONS = {"calc-v1": "smol-lora-v1", "calc-v2": "smol-lora-v2"}  # version → its model name
SKILL = {BASE_MODEL: 0.2, "smol-lora-v1": 0.6, "smol-lora-v2": 0.9}  # P(success) per model


def _publish(version_id: str, bus: InProcessBus) -> None:
    fulmen.publish_version(
        VersionEvent(
            meta=version_meta(),
            version_id=version_id,
            kind="model",
            target_agent="calc",
            algorithm="sft",
            model_name=VERSIONS[version_id],
        ),
        bus=bus,
    )
    fulmen.wait_for_version(version_id, timeout_s=10)


class Agent:
    """Rollouts whose reward depends on the model that answered (as a better model would
    score better); records, for each rollout, the models that answered and its reward."""

    def __init__(self, client: openai.OpenAI, seed: int) -> None:
        self.client = client
        self.rng = random.Random(seed)
        self.answered: dict[str, list[str]] = {}
        self.rewards: dict[str, float] = {}
        self.between_calls: Callable[[], None] | None = None

    def run(self, case: int, calls: int = 1) -> None:
        @fulmen.rollout(task_id=lambda case: f"case-{case}")
        def solve(case: int) -> None:
            models = []
            for call in range(calls):
                if call and self.between_calls is not None:
                    self.between_calls()
                completion = self.client.chat.completions.create(
                    model=BASE_MODEL, messages=[{"role": "user", "content": f"case {case}"}]
                )
                models.append(completion.model)
            reward = float(self.rng.random() < SKILL[models[-1]])
            self.answered[str(case)] = models
            self.rewards[str(case)] = reward
            fulmen.emit_reward(reward)

        solve(case)


def _expected(agent: Agent) -> dict[str, tuple[int, float]]:
    """Episodes and mean reward per version, from the models that answered each rollout."""
    by_version: dict[str, list[float]] = defaultdict(list)
    of_model = {model: version for version, model in VERSIONS.items()} | {BASE_MODEL: BASE}
    for key, models in agent.answered.items():
        served = "+".join(dict.fromkeys(of_model[m] for m in models))
        by_version[served].append(agent.rewards[key])
    return {v: (len(r), sum(r) / len(r)) for v, r in by_version.items()}


def _stored(store: LightningStore) -> dict[str, tuple[int, float]]:
    rows = store.sql(
        "SELECT model_version, sum(episode_count) AS n, "
        "sum(mean_reward * scored_count) / sum(scored_count) AS mean "
        f"FROM {store.settings.database}.reward_by_version_hourly "
        "WHERE agent_name = 'calc' GROUP BY model_version"
    ).to_pylist()
    return {row["model_version"]: (row["n"], pytest.approx(row["mean"])) for row in rows}


def _run(
    store: LightningStore, spill: Path, *, follow_model: bool, straddle: bool = False
) -> tuple[Agent, int]:
    """20 rollouts, calc-v1 published after 10 (and calc-v2 inside rollout 15 when
    `straddle`: its first call before the swap, its second after; calc-v2 from then on)."""
    bus = InProcessBus()
    producer = {
        "spill_dir": spill,
        "agent_name": "calc",
        "model_version": BASE,
        "openai_model_from_version": follow_model,
    }
    fulmen.configure(FulmenSettings(producer=producer), bus=bus)
    runner = EmbeddedRunner(bus, store, policy=AssemblyPolicy(grace_s=0.0))
    with OpenAIServer() as server:
        agent = Agent(openai.OpenAI(base_url=server.base_url, api_key="x"), seed=7)
        for case in range(20):
            if case == 10:
                _publish("calc-v1", bus)
            if straddle and case == 15:
                agent.between_calls = lambda: _publish("calc-v2", bus)
                agent.run(case, calls=2)
                agent.between_calls = None
            else:
                agent.run(case)
            runner.step()
    mismatches = fulmen.get_producer().version_mismatches
    assert fulmen.get_producer().flush(10)
    fulmen.shutdown()
    runner.finish()
    return agent, mismatches


def test_an_agent_on_its_own_model_is_stamped_with_the_base_that_served_it(
    new_store: Callable[[], LightningStore], tmp_path: Path
) -> None:
    store = new_store()
    agent, mismatches = _run(store, tmp_path, follow_model=False)
    assert all(models == [BASE_MODEL] for models in agent.answered.values())
    assert _stored(store) == _expected(agent)
    assert set(_stored(store)) == {BASE}  # nothing claims calc-v1, which served nothing
    assert mismatches == 10  # the 10 calls made while calc-v1 was in force


def test_an_agent_following_versions_requests_and_is_stamped_with_each_version(
    new_store: Callable[[], LightningStore], tmp_path: Path
) -> None:
    store = new_store()
    agent, mismatches = _run(store, tmp_path, follow_model=True, straddle=True)
    assert agent.answered["9"] == [BASE_MODEL]
    assert agent.answered["10"] == ["smol-lora-v1"]
    assert agent.answered["15"] == ["smol-lora-v1", "smol-lora-v2"]
    stored = _stored(store)
    assert stored == _expected(agent)
    assert stored["calc-v1+calc-v2"][0] == 1  # the rollout that straddled the swap says so
    assert mismatches == 0
    calls = store.sql(
        "SELECT rollout_id, step, model_version, request_model "
        f"FROM {store.settings.database}.triplets ORDER BY finished_at, step"
    ).to_pylist()
    straddled = [c for c in calls if c["model_version"] != calls[0]["model_version"]]
    assert {(c["request_model"], c["model_version"]) for c in calls} == {
        (BASE_MODEL, BASE),
        ("smol-lora-v1", "calc-v1"),
        ("smol-lora-v2", "calc-v2"),
    }
    assert straddled
    finished = store.sql(
        "SELECT model_version, count() AS n "
        f"FROM {store.settings.database}.rollouts WHERE phase = 'finished' "
        "GROUP BY model_version ORDER BY model_version"
    ).to_pylist()
    assert {row["model_version"]: row["n"] for row in finished} == {
        BASE: 10,
        "calc-v1": 5,
        "calc-v1+calc-v2": 1,
        "calc-v2": 4,
    }
