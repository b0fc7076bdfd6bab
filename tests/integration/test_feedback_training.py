"""Feedback end to end on the embedded default, CPU only: an instrumented agent answers
through the policy server on a tiny model, thumbs (and a correction) arrive through the SDK
and through the gateway's feedback route, the stream runner stores them beside the
episodes, and DPO and KTO jobs train on the window and publish versions whose lineage names
the pairing rule."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest

import fulmen
from fulmen.models import tiny_model_dir
from fulmen.producers import FulmenSettings, InProcessBus
from fulmen.producers.gateway import GatewaySettings, gateway_in_thread, open_gateway
from fulmen.schemas import VersionEvent
from fulmen.serving import PolicyServer, serve_in_thread
from fulmen.store import LightningStore
from fulmen.streams import AssemblyPolicy, EmbeddedRunner
from fulmen.trainers import GateSettings, Lineage, PreferenceSettings, TrainSettings, run_job
from tests.support.digit_agent import answer
from tests.support.tasks import DigitTask

pytestmark = pytest.mark.integration
TASK = DigitTask()


@dataclass
class Loop:
    store: LightningStore
    runner: EmbeddedRunner
    gateway_url: str
    tmp: Path
    base: Path

    def job(self, algo: str) -> TrainSettings:
        fast = PreferenceSettings(learning_rate=3e-3, epochs=4, batch_size=8, min_steps=4)
        return TrainSettings(
            algo=algo, agent_name="digits", task="tests.support.tasks:DigitTask",
            base_model=str(self.base), artifacts_dir=self.tmp / "artifacts",
            snapshots_dir=self.tmp / "windows", dpo=fast, kto=fast,
            # The plumbing is under test here, not whether a random model learns: the gate
            # lets a candidate through that is somewhat worse than its parent.
            gate=GateSettings(heldout_tasks=12, max_new_tokens=8, batch_size=12, min_gain=-1.0),
        )  # fmt: skip


@pytest.fixture
def loop(tmp_path: Path, new_store: Callable[[], LightningStore]) -> Iterator[Loop]:
    base = tiny_model_dir(tmp_path / "tiny", seed=3)
    server = PolicyServer(base, model_roots=[tmp_path / "artifacts"])
    bus = InProcessBus()
    store = new_store()
    agent = FulmenSettings(
        producer={"agent_name": "digits", "spill_dir": tmp_path / "spill",
                  "request_token_ids": True},
    )  # fmt: skip
    fulmen.configure(agent, bus=bus)
    runner = EmbeddedRunner(bus, store, policy=AssemblyPolicy(grace_s=0.0))
    with serve_in_thread(server) as url:
        gateway = open_gateway(
            GatewaySettings(upstream_url=url),
            FulmenSettings(producer={"agent_name": "digits", "spill_dir": tmp_path / "gw-spill",
                                     "follow_versions": False}),
            bus=bus,
        )  # fmt: skip
        with gateway_in_thread(gateway) as gateway_url:
            client = openai.OpenAI(base_url=url, api_key="local")
            for seed, case in enumerate(TASK.training(6, seed=1) * 4):
                answer(client, case.task_id, list(case.messages), server.name, seed)
            fulmen.get_producer().flush(10)
            runner.step()
            runner.finish()
            yield Loop(store, runner, gateway_url, tmp_path, base)
        gateway.close(10)
    fulmen.shutdown()


def test_thumbs_reach_the_store_and_preference_jobs_publish_with_their_pairing(
    loop: Loop,
) -> None:
    db = loop.store.settings.database
    episodes = loop.store.sql(
        f"SELECT rollout_id, reward FROM {db}.latest_episodes ORDER BY rollout_id"
    ).to_pylist()
    assert len(episodes) == 24
    by_sdk, by_gateway = episodes[:12], episodes[12:]
    for row in by_sdk:
        good = row["reward"] >= 1.0
        fulmen.emit_feedback("up" if good else "down", rollout_id=row["rollout_id"],
                             correction=None if good else "7")  # fmt: skip
    for row in by_gateway:
        response = httpx.post(
            f"{loop.gateway_url}/rollouts/{row['rollout_id']}/attempts/1/feedback",
            json={"thumb": "up" if row["reward"] >= 1.0 else "down", "source": "judge"},
        )
        assert response.status_code == 200, response.text
    refused = httpx.post(
        f"{loop.gateway_url}/rollouts/{by_gateway[0]['rollout_id']}/feedback",
        json={"thumb": "sideways"},
    )
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "invalid_body"
    blank = httpx.post(
        f"{loop.gateway_url}/rollouts/{by_gateway[0]['rollout_id']}/feedback",
        json={"thumb": "down", "correction": " "},
    )
    assert blank.status_code == 400
    assert "correction is blank" in blank.text
    fulmen.get_producer().flush(10)
    loop.runner.step()

    stored = loop.store.sql(
        f"SELECT source, count() AS n, countIf(correction IS NOT NULL) AS corrected, "
        f"countIf(reward >= 1.0 AND thumbs_up) + countIf(reward < 1.0 AND NOT thumbs_up) AS "
        f"agreeing FROM {db}.episode_feedback GROUP BY source ORDER BY source"
    ).to_pylist()
    downs = sum(1 for row in by_sdk if row["reward"] < 1.0)
    assert stored == [
        {"source": "human", "n": 12, "corrected": downs, "agreeing": 12},
        {"source": "judge", "n": 12, "corrected": 0, "agreeing": 12},
    ]
    assert loop.store.sql(f"SELECT count() AS n FROM {db}.episodes").to_pylist() == [{"n": 24}]

    published: list[VersionEvent] = []
    for algo, pairing in (("dpo", "rewards(min_gap=0.5, max_per_task=16)"), ("kto", "thumbs")):
        result = run_job(loop.job(algo), store=loop.store, publish=published.append)
        assert result.outcome == "published", result.reason
        assert result.metrics["examples"] > 0
        event = published[-1]
        assert event.algorithm == algo
        assert event.recipe["pairing"] == pairing
        assert len(event.recipe["feedback_hash"]) == 64
        assert not (Path(event.artifact_uri or "") / "ref").exists()  # TRL's reference copy
        assert (Path(event.artifact_uri or "") / "adapter_config.json").is_file()
        loop.store.write_events([event])
    dpo, kto = published
    assert kto.parent_version == dpo.version_id
    lineage = loop.store.sql(
        f"SELECT algorithm, recipe['pairing'] AS pairing FROM {db}.versions ORDER BY published_at"
    ).to_pylist()
    assert lineage == [
        {"algorithm": "dpo", "pairing": "rewards(min_gap=0.5, max_per_task=16)"},
        {"algorithm": "kto", "pairing": "thumbs"},
    ]
    assert Lineage.from_store(loop.store).current("digits").version_id == kto.version_id  # type: ignore[union-attr]
