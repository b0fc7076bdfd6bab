"""The release controller on a real broker (the control topic) and store (chDB): a canary
at 20% whose rollouts score worse is rolled back from the stored episodes and no agent is
left on it; a better one is promoted; a canary a serving replica failed to load is rolled
back at once; `fulmen rollback` by hand; and the first case again with the agent's calls
answered by a real policy server that loads both versions.

Rollouts are routed by a real agent (the SDK following the control topic); their episodes
are written to the store by the test, with rewards drawn per arm from fixed seeds. The
controller is driven pass by pass (`tick`), like `fulmen rollout --once`."""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import openai
import pyarrow as pa
import pytest
from typer.testing import CliRunner

import fulmen
from fulmen.cli import app
from fulmen.kafka import KafkaSettings, create_topics
from fulmen.models import tiny_model_dir
from fulmen.producers import (
    FulmenSettings,
    Resources,
    get_producer,
    publish_control,
    publish_version,
    version_meta,
)
from fulmen.releases import ArmQuery, ReleaseController, ReleaseSettings, arm_stats
from fulmen.schemas import ReleaseDecision, ServingAck, VersionEvent
from fulmen.serving import AdapterFollower, PolicyServer, serve_in_thread
from fulmen.store import TABLES, LightningStore
from tests.support.adapters import make_adapter
from tests.support.events import llm_span, version_event

pytestmark = pytest.mark.integration

SHARE = 0.2


@pytest.fixture
def settings(bootstrap_servers: str, tmp_path: Path) -> FulmenSettings:
    """Fresh topics on the broker; the agent `calc`."""
    prefix = f"r{uuid.uuid4().hex[:8]}."
    made = FulmenSettings(
        transport="kafka",
        kafka={"bootstrap_servers": bootstrap_servers},
        topics={"prefix": prefix},
        producer={"agent_name": "calc", "capture_openai": False, "spill_dir": tmp_path / "s"},
    )
    create_topics(KafkaSettings(bootstrap_servers=bootstrap_servers), made.topics.event_topics())
    return made


@pytest.fixture
def agent(settings: FulmenSettings) -> Iterator[FulmenSettings]:
    """The agent `calc` of this process, following the control topic."""
    fulmen.configure(settings)
    yield settings
    fulmen.shutdown()


OPTIONS = ReleaseSettings(min_episodes=40, max_episodes=2000, planned_episodes=200)


def canary(version_id: str, *, kind: str = "model") -> VersionEvent:
    event = version_event(version_id, "model" if kind == "model" else "prompt", target="calc")
    return event.model_copy(update={"traffic_share": SHARE})


def agent_runs(key: str) -> Resources:
    """What the agent runs for a rollout whose routing key is `key`."""
    return get_producer().versions.for_agent(None, key)


def wait_until(done: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, f"not within {timeout_s} s: {what}"
        time.sleep(0.05)


def serve_rollouts(
    store: LightningStore, count: int, rewards: dict[str, float], *, seed: int, offset: int = 0
) -> dict[str, int]:
    """`count` rollouts routed by the agent, their episodes written to the store with a
    reward of 1 with probability `rewards[version]` (the version the rollout ran); returns
    the episodes per version."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    rows, per_version = [], dict.fromkeys(rewards, 0)
    for index in range(offset, offset + count):
        rollout_id = f"rollout-{index}"
        version = agent_runs(rollout_id).model_version
        per_version[version] += 1
        reward = float(rng.random() < rewards[version])
        rows.append(episode_row(rollout_id, version, reward, now))
    store.insert("episodes", pa.Table.from_pylist(rows, schema=TABLES["episodes"]))
    return per_version


def episode_row(
    rollout_id: str, version: str, reward: float, at: datetime, status: str = "succeeded"
) -> dict[str, object]:
    return {
        "rollout_id": rollout_id, "attempt": 1, "revision": 0, "agent_name": "calc",
        "task_id": "t", "model_version": version, "resources_version": "", "status": status,
        "scored": True, "reward": reward, "rewards": {"reward": reward},
        "credit_assignment": "final", "started_at": at - timedelta(seconds=2),
        "finished_at": at, "assembled_at": at, "num_spans": 1, "num_llm_calls": 1,
        "num_tool_calls": 0, "num_tool_errors": 0, "input": None, "error": None, "num_events": 3,
    }  # fmt: skip


def start_canary(settings: FulmenSettings, stable: str, candidate: str) -> None:
    publish_version(version_event(stable, target="calc"), settings)
    publish_version(canary(candidate), settings)
    wait_until(lambda: candidate in {c.version_id for c in get_producer().versions.routes.canaries},
               "the agent runs the canary")  # fmt: skip


def one_pass(settings: FulmenSettings, store: LightningStore) -> list[ReleaseDecision]:
    """What one pass of a controller started afresh decides."""
    controller = ReleaseController(OPTIONS, settings, store=store)
    try:
        return controller.tick()
    finally:
        controller.close()


def cli_env(settings: FulmenSettings, store: LightningStore) -> dict[str, str]:
    """The environment of a `fulmen` command on the same broker, topics and store."""
    return {
        "FULMEN_TRANSPORT": "kafka",
        "FULMEN_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "FULMEN_TOPICS__PREFIX": settings.topics.prefix,
        "FULMEN_STORE__PATH": str(store.settings.path),
        "FULMEN_STORE__DATABASE": store.settings.database,
        "FULMEN_RELEASE__MIN_EPISODES": str(OPTIONS.min_episodes),
    }


def decisions_in_store(store: LightningStore) -> list[tuple[str, str]]:
    table = store.sql(
        f"SELECT version_id, toString(action) AS action FROM {store.settings.database}"
        ".release_decisions ORDER BY decided_at"
    )
    return [(row["version_id"], row["action"]) for row in table.to_pylist()]


def test_a_worse_canary_is_rolled_back_and_no_agent_is_left_on_it(
    agent: FulmenSettings, new_store: Callable[[], LightningStore]
) -> None:
    store = new_store()
    start_canary(agent, "calc-v1", "calc-v2")
    controller = ReleaseController(OPTIONS, agent, store=store)
    try:
        early = serve_rollouts(store, 40, {"calc-v1": 0.7, "calc-v2": 0.3}, seed=1)
        assert 0 < early["calc-v2"] < early["calc-v1"]
        first = controller.tick()
        assert [(d.action, d.version_id) for d in first] == [("hold", "calc-v2")]
        assert first[0].arms[0].version_id == "calc-v2"
        assert controller.tick() == []  # the same hold is not recorded again
        served = serve_rollouts(store, 1500, {"calc-v1": 0.7, "calc-v2": 0.3}, seed=2, offset=40)
        assert served["calc-v2"] == pytest.approx(1500 * SHARE, rel=0.2)
        [decision] = controller.tick()
    finally:
        controller.close()
    assert (decision.action, decision.to_version, decision.automatic) == (
        "rollback", "calc-v1", True
    )  # fmt: skip
    canary_arm, parent_arm = decision.arms
    assert canary_arm.mean_reward < parent_arm.mean_reward
    assert canary_arm.reward_upper - parent_arm.reward_lower < 0
    assert decision.rule.startswith("asymptotic-cs alpha=0.05")
    wait_until(lambda: not get_producer().versions.routes.canaries, "the rollback applied")
    assert {agent_runs(f"rollout-{i}").model_version for i in range(2000)} == {"calc-v1"}
    assert decisions_in_store(store) == [("calc-v2", "hold"), ("calc-v2", "rollback")]
    # A controller started afresh reads the decision on the topic: nothing to decide again.
    assert one_pass(agent, store) == []


def test_a_better_canary_is_promoted_to_every_rollout(
    agent: FulmenSettings, new_store: Callable[[], LightningStore]
) -> None:
    store = new_store()
    start_canary(agent, "calc-v3", "calc-v4")
    serve_rollouts(store, 1500, {"calc-v3": 0.4, "calc-v4": 0.8}, seed=3)
    [decision] = one_pass(agent, store)
    assert (decision.action, decision.to_version, decision.traffic_share) == (
        "promote", "calc-v4", 1.0
    )  # fmt: skip
    wait_until(lambda: not get_producer().versions.routes.canaries, "the promotion applied")
    assert {agent_runs(f"rollout-{i}").model_version for i in range(500)} == {"calc-v4"}


def test_a_canary_a_replica_failed_to_load_is_rolled_back_at_once(
    agent: FulmenSettings, new_store: Callable[[], LightningStore]
) -> None:
    store = new_store()
    start_canary(agent, "calc-v5", "calc-v6")
    ack = ServingAck(
        meta=version_meta(),
        replica_id="policy-0",
        version_id="calc-v6",
        model_name="calc-v6-name",
        status="failed",
        detail="out of memory",
    )
    publish_control(ack, agent)
    done = CliRunner().invoke(app, ["rollout", "--once"], env=cli_env(agent, store))
    assert done.exit_code == 0, done.output
    decision = json.loads(done.stdout)
    assert (decision["action"], decision["to_version"]) == ("rollback", "calc-v5")
    assert "policy-0" in decision["reason"]
    assert "out of memory" in decision["reason"]
    assert decisions_in_store(store) == [("calc-v6", "rollback")]
    wait_until(lambda: not get_producer().versions.routes.canaries, "the rollback applied")


def test_arm_stats_split_by_version_since_the_canary_started(
    new_store: Callable[[], LightningStore],
) -> None:
    store = new_store()
    now = datetime.now(UTC)
    before = now - timedelta(hours=1)
    rows = [
        episode_row("a", "v1", 1.0, now), episode_row("b", "v1", 0.0, now, status="failed"),
        episode_row("c", "v2", 0.5, now), episode_row("d", "v1+v2", 1.0, now),
        episode_row("e", "v1", 1.0, before), episode_row("f", "v3", 1.0, now),
    ]  # fmt: skip
    store.insert("episodes", pa.Table.from_pylist(rows, schema=TABLES["episodes"]))
    # A later revision of "c" with another reward: only the latest counts.
    late = episode_row("c", "v2", 0.25, now) | {"revision": 1}
    store.insert("episodes", pa.Table.from_pylist([late], schema=TABLES["episodes"]))
    # Tokens: the LLM usage of each episode's spans (15 per span here); none for "b".
    store.write_events([llm_span("a", 0), llm_span("a", 1), llm_span("c", 0)])
    since = int((now - timedelta(minutes=1)).timestamp() * 1e9)
    stats = arm_stats(store, ArmQuery("calc", "model", since, ("v2", "v1", "v9")))
    assert (stats["v1"].finished, stats["v1"].scored, stats["v1"].errors) == (2, 2, 1)
    assert stats["v1"].reward_sum == 1.0
    assert stats["v1"].latency_mean_s == pytest.approx(2.0)
    assert (stats["v1"].tokens_mean, stats["v2"].tokens_mean) == (15.0, 15.0)
    assert (stats["v2"].scored, stats["v2"].reward_sum, stats["v2"].reward_sq_sum) == (
        1, 0.25, 0.0625
    )  # fmt: skip
    assert stats["v9"].finished == 0
    assert arm_stats(store, ArmQuery(None, "model", since, ("v3",)))["v3"].scored == 1
    assert arm_stats(store, ArmQuery("other", "model", since, ("v3",)))["v3"].scored == 0


def test_rollback_by_hand(
    settings: FulmenSettings, new_store: Callable[[], LightningStore]
) -> None:
    store = new_store()
    env = cli_env(settings, store)
    runner = CliRunner()
    nothing = runner.invoke(app, ["rollback", "calc"], env=env)
    assert nothing.exit_code == 2
    assert "calc runs no model version" in nothing.output
    publish_version(version_event("calc-v7", target="calc"), settings)
    published = version_event("calc-v8", target="calc").model_copy(
        update={"parent_version": "calc-v7"}
    )
    publish_version(published, settings)
    unknown = runner.invoke(app, ["rollback", "calc", "--to", "calc-v99"], env=env)
    assert unknown.exit_code == 2
    assert "calc-v99" in unknown.output
    done = runner.invoke(app, ["rollback", "calc"], env=env)
    assert done.exit_code == 0, done.output
    assert "from calc-v8 to calc-v7" in done.output
    assert decisions_in_store(store) == [("calc-v8", "rollback")]


def test_through_the_policy_server_a_worse_canary_is_rolled_back_and_no_call_reaches_it(
    settings: FulmenSettings, new_store: Callable[[], LightningStore], tmp_path: Path
) -> None:
    """The same, with the agent's calls going to a real policy server that loads both
    versions as adapters, and rewards scored from the answers: the task is to answer as the
    base model does (greedy). The stable version's adapter leaves the base's outputs as they
    are; the canary's changes them, so it answers wrongly. The SDK sends each rollout's call
    to its arm's model name; the episode is recorded under the model that answered (as the
    stream stage stamps it)."""
    base = tiny_model_dir(tmp_path / "tiny", seed=3)
    right = str(make_adapter(base, tmp_path / "right", changes_outputs=False))
    wrong = str(make_adapter(base, tmp_path / "wrong"))
    stable = version_event("calc-v1", target="calc").model_copy(update={"artifact_uri": right})
    candidate = canary("calc-v2").model_copy(update={"artifact_uri": wrong})
    store = new_store()
    calling = settings.model_copy(update={"producer": settings.producer.model_copy(
        update={"capture_openai": True})})  # fmt: skip
    server = PolicyServer(base, name="base", model_roots=[tmp_path])
    prompts = [f"{a}+{b}" for a in range(4) for b in range(4)]
    with serve_in_thread(server) as url:
        client = openai.OpenAI(base_url=url, api_key="unused")

        def answer(prompt: str) -> tuple[str, str]:
            reply = client.chat.completions.create(
                model="base", messages=[{"role": "user", "content": prompt}], max_tokens=4,
                temperature=0.0,
            )  # fmt: skip
            return reply.model, reply.choices[0].message.content or ""

        expected = {prompt: answer(prompt)[1] for prompt in prompts}  # before any version
        publish_version(stable, settings)
        publish_version(candidate, settings)
        follower = AdapterFollower(url, settings)
        follower.start()
        wait_until(lambda: len(follower.loaded) == 2, "both versions loaded", timeout_s=120)
        fulmen.configure(calling)
        try:
            versions = {"calc-v1-name": "calc-v1", "calc-v2-name": "calc-v2"}

            def serve(tasks: range) -> dict[str, list[float]]:
                now, rows = datetime.now(UTC), []
                rewards: dict[str, list[float]] = {"calc-v1": [], "calc-v2": []}
                for index in tasks:
                    prompt = prompts[index % len(prompts)]
                    with fulmen.rollout(task_id=f"task-{index}"):
                        model, text = answer(prompt)
                    version, reward = versions[model], float(text == expected[prompt])
                    rewards[version].append(reward)
                    rows.append(episode_row(f"policy-{index}", version, reward, now))
                store.insert("episodes", pa.Table.from_pylist(rows, schema=TABLES["episodes"]))
                return rewards

            wait_until(lambda: bool(get_producer().versions.routes.canaries), "canary in force")
            rewards = serve(range(400))
            assert len(rewards["calc-v2"]) == pytest.approx(400 * SHARE, rel=0.35)
            assert sum(rewards["calc-v1"]) == len(rewards["calc-v1"])  # the base's answers
            assert sum(rewards["calc-v2"]) < 0.5 * len(rewards["calc-v2"])
            [decision] = one_pass(settings, store)
            assert (decision.action, decision.to_version) == ("rollback", "calc-v1")
            wait_until(lambda: not get_producer().versions.routes.canaries, "rollback applied")
            after = serve(range(400, 600))
            assert (len(after["calc-v1"]), after["calc-v2"]) == (200, [])
        finally:
            fulmen.shutdown()
            follower.stop()
