"""What a serving replica loads and unloads, from the control topic's fold: needed versions
only, unneeded ones after the grace period, kept when needed again, unloading held while a
needed version is missing here or failed on a replica of the pool."""

from __future__ import annotations

from fulmen.schemas import ReleaseDecision, ServingAck, ServingStatus, VersionEvent
from fulmen.serving._replica_plan import ReplicaPlan
from tests.support.events import meta, version_event


def _plan(*events: VersionEvent) -> ReplicaPlan:
    plan = ReplicaPlan(pool="default", grace_s=10.0)
    for event in events:
        plan.apply(event)
    return plan


def _ack(replica: str, name: str, status: ServingStatus, pool: str = "default") -> ServingAck:
    return ServingAck(
        meta=meta(), replica_id=replica, pool=pool, version_id=name, model_name=name,
        status=status,
    )  # fmt: skip


def _names(plan: ReplicaPlan) -> list[str]:
    return [str(v.model_name) for v in plan.to_load()]


def _canary(version_id: str, share: float = 0.1) -> VersionEvent:
    return version_event(version_id, target="calc").model_copy(update={"traffic_share": share})


def test_only_what_some_target_runs_is_loaded() -> None:
    plan = _plan(
        version_event("v1", target="calc"),
        version_event("v2", target="calc"),
        version_event("w1", target="other"),
        version_event("p1", "prompt", templates={"system": "hi"}),
        _canary("v3"),
    )
    assert _names(plan) == ["v2-name", "v3-name", "w1-name"]
    plan.loaded("v2-name")
    assert _names(plan) == ["v3-name", "w1-name"]


def test_an_unneeded_name_goes_after_the_grace_and_is_kept_when_needed_again() -> None:
    v1, v2 = version_event("v1", target="calc"), version_event("v2", target="calc")
    plan = _plan(v1)
    plan.loaded("v1-name")
    plan.apply(v2)
    plan.loaded("v2-name")
    assert plan.to_unload(100.0) == []  # its grace starts
    assert plan.to_unload(109.0) == []
    plan.apply(v1.model_copy(update={"meta": meta()}))  # a rollback republishes it
    assert plan.to_unload(120.0) == []
    plan.apply(v2.model_copy(update={"meta": meta()}))
    assert plan.to_unload(121.0) == []  # v1's grace starts afresh
    assert plan.to_unload(131.0) == ["v1-name"]
    plan.unloaded("v1-name")
    assert plan.held() == {"v2-name"}
    assert plan.to_unload(500.0) == []


def test_a_canary_rolled_back_is_unloaded_and_its_parent_kept() -> None:
    plan = _plan(version_event("v1", target="calc"), _canary("v2"))
    plan.loaded("v1-name")
    plan.loaded("v2-name")
    rollback = ReleaseDecision(
        meta=meta(), target_agent="calc", kind="model", version_id="v2", to_version="v1",
        action="rollback", traffic_share=0.0, automatic=True, reason="worse",
    )  # fmt: skip
    plan.apply(rollback)
    assert plan.to_unload(0.0) == []
    assert plan.to_unload(10.0) == ["v2-name"]
    assert plan.version_of("v2-name") == "v2"


def test_unloading_waits_while_a_needed_version_is_missing_or_failed_in_the_pool() -> None:
    plan = _plan(version_event("v1", target="calc"))
    plan.loaded("v1-name")
    plan.apply(version_event("v2", target="calc"))
    assert plan.to_unload(0.0) == []
    assert plan.to_unload(50.0) == []  # v2 is not loaded here yet
    plan.failed("v2-name")
    assert _names(plan) == []  # not retried
    assert plan.to_unload(60.0) == []
    plan.apply(version_event("v2", target="calc"))  # published again: retried
    assert _names(plan) == ["v2-name"]
    plan.loaded("v2-name")
    plan.apply(_ack("policy-b", "v2-name", "failed"))
    plan.apply(_ack("policy-c", "v2-name", "failed", pool="other"))
    assert plan.to_unload(70.0) == []  # policy-b's agents still run v1
    plan.apply(_ack("policy-b", "v2-name", "loaded"))
    assert plan.to_unload(70.0) == ["v1-name"]
