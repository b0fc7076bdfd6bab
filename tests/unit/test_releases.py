"""Canary releases on the agent's side: routing by a stable hash, the release board's fold
of versions and decisions, promote and rollback, untargeted canaries, versions held back
until serving replicas acknowledge them, and the same through `fulmen.rollout` on a bus."""

from __future__ import annotations

import ast
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

import fulmen
from fulmen.producers import (
    FulmenSettings,
    InProcessBus,
    ReleaseBoard,
    Resources,
    VersionNotInForce,
    VersionState,
    publish_control,
    publish_version,
    route_bucket,
    version_meta,
)
from fulmen.schemas import ReleaseAction, ReleaseDecision, ServingAck, VersionEvent, VersionKind
from tests.support.events import version_event

KEYS = [f"user-{i}" for i in range(4_000)]


def canary(
    version_id: str, share: float, kind: VersionKind = "model", *, target: str | None = "calc"
) -> VersionEvent:
    event = version_event(version_id, kind, target=target)
    return event.model_copy(update={"traffic_share": share})


def decision(
    version_id: str, action: ReleaseAction, to: str | None, *, target: str | None = "calc"
) -> ReleaseDecision:
    share = {"promote": 1.0, "hold": 0.2, "rollback": 0.0}[action]
    return ReleaseDecision(meta=version_meta(), target_agent=target, kind="model",
                           version_id=version_id, to_version=to, action=action,
                           traffic_share=share)  # fmt: skip


def ack(version_id: str, replica: str, status: str = "loaded") -> ServingAck:
    return ServingAck.model_validate({
        "meta": version_meta(), "replica_id": replica, "version_id": version_id,
        "model_name": f"{version_id}-name", "status": status,
    })  # fmt: skip


def arms(state: VersionState, agent: str | None = None) -> Counter[str]:
    return Counter(state.for_agent(agent, key).model_version for key in KEYS)


def test_route_bucket_is_stable_uniform_and_salted_by_the_version() -> None:
    buckets = [route_bucket(key, "calc-v2") for key in KEYS]
    assert buckets == [route_bucket(key, "calc-v2") for key in KEYS]
    assert all(0.0 <= b < 1.0 for b in buckets)
    for share in (0.1, 0.2, 0.5):
        assert abs(sum(b < share for b in buckets) / len(KEYS) - share) < 0.03
    in_v2 = {k for k, b in zip(KEYS, buckets, strict=True) if b < 0.2}
    in_v3 = {key for key in KEYS if route_bucket(key, "calc-v3") < 0.2}
    assert len(in_v2 & in_v3) < 0.3 * len(in_v2)  # each canary draws its own users


def test_a_canary_takes_its_share_and_the_rest_stays_on_the_stable_version() -> None:
    state = VersionState(Resources(model_version="base"), agent_name="calc")
    state.apply([version_event("calc-v1", target="calc"), canary("calc-v2", 0.2)])
    split = arms(state)
    assert set(split) == {"calc-v1", "calc-v2"}
    assert abs(split["calc-v2"] / len(KEYS) - 0.2) < 0.03
    assert state.stable.model_version == "calc-v1"
    assert state.for_agent(None, None).model_version == "calc-v1"  # outside a rollout
    assert state.for_agent(None, "user-7") == state.for_agent(None, "user-7")
    assert state.for_agent(None, "user-7").model_name in ("calc-v1-name", "calc-v2-name")


@pytest.mark.parametrize(("action", "to", "after"), [
    ("promote", "calc-v2", {"calc-v2"}),
    ("rollback", "calc-v1", {"calc-v1"}),
    ("rollback", None, {"base"}),
    ("hold", None, {"calc-v1", "calc-v2"}),
])  # fmt: skip
def test_decisions_end_the_canary_where_they_say(
    action: ReleaseAction, to: str | None, after: set[str]
) -> None:
    state = VersionState(Resources(model_version="base"), agent_name="calc")
    state.apply([version_event("calc-v1", target="calc"), canary("calc-v2", 0.2)])
    swapped = state.apply([decision("calc-v2", action, to)])
    assert set(arms(state)) == after
    assert (swapped is None) == (action == "hold")


def test_a_decision_for_another_agent_changes_nothing_here() -> None:
    state = VersionState(Resources(model_version="base"), agent_name="calc")
    state.apply([version_event("calc-v1", target="calc"), canary("calc-v2", 0.2)])
    assert state.apply([decision("calc-v2", "rollback", None, target="writer")]) is None
    assert set(arms(state)) == {"calc-v1", "calc-v2"}


def test_an_untargeted_canary_runs_for_every_agent_and_the_board_lists_it_once() -> None:
    state = VersionState(Resources(model_version="base"), agent_name="calc")
    state.apply([version_event("w-1", target="writer"), canary("all-2", 0.5, target=None)])
    assert set(arms(state)) == {"base", "all-2"}
    assert set(arms(state, "writer")) == {"w-1", "all-2"}
    assert set(arms(state, "never-seen")) == {"base", "all-2"}
    board = ReleaseBoard()
    for event in (version_event("w-1", target="writer"), canary("all-2", 0.5, target=None)):
        board.apply(event)
    (running,) = board.canaries()
    assert (running.target_agent, running.event.version_id, running.parent) == (None, "all-2", None)


def test_the_board_knows_each_canarys_parent_and_what_serving_needs() -> None:
    board = ReleaseBoard()
    v1, v2 = version_event("calc-v1", target="calc"), canary("calc-v2", 0.2)
    for event in (v1, v2, canary("p-2", 0.5, "prompt")):
        board.apply(event)
    model = next(c for c in board.canaries() if c.kind == "model")
    assert model.parent == v1
    assert model.since_ns == v2.meta.emitted_at_unix_nano
    assert board.needed_model_names() == {"calc-v1-name", "calc-v2-name"}
    board.apply(decision("calc-v2", "rollback", "calc-v1"))
    assert board.decided("calc-v2")
    assert [c.kind for c in board.canaries()] == ["prompt"]
    assert board.needed_model_names() == {"calc-v1-name"}
    board.apply(ack("calc-v1", "policy-0"))
    board.apply(ack("calc-v1", "policy-1", "failed"))
    assert board.loaded_replicas("calc-v1-name", "default") == {"policy-0"}
    assert board.failed_load("calc-v1-name") is not None


def test_a_canary_published_again_after_a_full_version_is_replaced() -> None:
    state = VersionState(Resources(model_version="base"), agent_name="calc")
    state.apply([canary("calc-v2", 0.2), version_event("calc-v3", target="calc")])
    assert set(arms(state)) == {"calc-v3"}


def test_a_model_version_waits_for_every_replica_of_the_pool() -> None:
    state = VersionState(Resources(model_version="base"), agent_name="calc", await_replicas=2)
    assert state.apply([version_event("calc-v1", target="calc")]) is None
    assert state.held_back == ["calc-v1"]
    assert state.apply([ack("calc-v1", "policy-0"), ack("calc-v1", "policy-0")]) is None
    assert state.apply([ack("calc-v1", "policy-1", "failed")]) is None
    swapped = state.apply([ack("calc-v1", "policy-1")])
    assert swapped is not None
    assert swapped.model_version == "calc-v1"
    assert state.held_back == []
    # a later version replaces one still held back; prompts never wait
    state.apply([version_event("calc-v2", target="calc"), version_event("calc-v3", target="calc")])
    state.apply([version_event("p-1", "prompt", target="calc")])
    assert state.held_back == ["calc-v3"]
    assert state.stable.resources_version == "p-1"
    state.apply([ack("calc-v2", "policy-0"), ack("calc-v2", "policy-1")])
    assert state.stable.model_version == "calc-v1"


@pytest.fixture
def bus(tmp_path: Path) -> Iterator[InProcessBus]:
    bus = InProcessBus()
    producer = {"spill_dir": tmp_path / "spill", "agent_name": "calc", "capture_openai": False,
                "model_version": "base"}  # fmt: skip
    fulmen.configure(FulmenSettings(producer=producer), bus=bus)
    yield bus
    fulmen.shutdown()


def test_a_rollout_runs_one_arm_chosen_by_its_user_then_its_task(bus: InProcessBus) -> None:
    publish_version(version_event("calc-v1", target="calc"))
    publish_version(canary("calc-v2", 0.3))
    fulmen.wait_for_version("calc-v2", timeout_s=5)

    def served(**options: str) -> str:
        with fulmen.rollout(**options):  # type: ignore[misc]
            return fulmen.resources().model_version

    by_user = {user: served(user_id=user, task_id="t") for user in KEYS[:300]}
    assert set(by_user.values()) == {"calc-v1", "calc-v2"}
    assert all(served(user_id=u, task_id=f"other-{u}") == v for u, v in by_user.items())
    expected = {
        task: "calc-v2" if route_bucket(task, "calc-v2") < 0.3 else "calc-v1" for task in KEYS[:100]
    }
    assert {task: served(task_id=task) for task in expected} == expected
    assert fulmen.resources().model_version == "calc-v1"  # outside a rollout: stable

    publish_control(decision("calc-v2", "rollback", "calc-v1"))
    fulmen.wait_for_version("calc-v1", timeout_s=5, everywhere=True)
    with pytest.raises(VersionNotInForce):
        fulmen.wait_for_version("calc-v2", timeout_s=0.5)
    assert {served(user_id=user) for user in KEYS[:300]} == {"calc-v1"}


def test_the_canary_example_in_versions_md(capsys: pytest.CaptureFixture[str]) -> None:
    docs = Path(__file__).resolve().parents[2] / "docs" / "versions.md"
    blocks = re.findall(r"```python\n(.*?)```", docs.read_text(), re.DOTALL)
    (canary_block,) = [block for block in blocks if "traffic_share" in block]
    try:
        exec(compile(canary_block, "docs/versions.md", "exec"), {"__name__": "docs_example"})
    finally:
        fulmen.shutdown()
    split, promoted = [
        ast.literal_eval(line.removeprefix("Counter(").removesuffix(")"))
        for line in capsys.readouterr().out.splitlines()
    ]
    assert set(split) == {"calc-1", "calc-2"}
    assert 150 < split["calc-2"] < 250
    assert promoted == {"calc-2": 1_000}
