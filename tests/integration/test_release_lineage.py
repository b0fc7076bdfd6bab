"""The next trainer job's parent is the version agents run outside any canary, by the
store's versions and release decisions: never a canary still compared, nor one rolled
back; a promoted canary is."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from fulmen.producers import version_meta
from fulmen.schemas import ReleaseAction, ReleaseDecision, VersionEvent
from fulmen.store import LightningStore
from fulmen.trainers import Lineage, prompt_in_force
from tests.support.events import version_event

pytestmark = pytest.mark.integration


def canary(version_id: str, share: float = 0.2, kind: str = "model") -> VersionEvent:
    event = version_event(version_id, "model" if kind == "model" else "prompt", target="calc")
    return event.model_copy(update={"traffic_share": share})


def decided(version_id: str, action: ReleaseAction, to: str | None, kind: str = "model"
            ) -> ReleaseDecision:  # fmt: skip
    return ReleaseDecision.model_validate({
        "meta": version_meta(), "target_agent": "calc", "kind": kind, "version_id": version_id,
        "to_version": to, "action": action, "traffic_share": 1.0 if action == "promote" else 0.0,
    })  # fmt: skip


def parent(store: LightningStore) -> str | None:
    current = Lineage.from_store(store).current("calc")
    return None if current is None else current.version_id


def test_the_parent_is_the_stable_version_through_canaries_and_decisions(
    new_store: Callable[[], LightningStore],
) -> None:
    store = new_store()
    steps: list[tuple[VersionEvent | ReleaseDecision, str | None]] = [
        (version_event("calc-v1", target="calc"), "calc-v1"),
        (canary("calc-v2"), "calc-v1"),  # still compared
        (decided("calc-v2", "rollback", "calc-v1"), "calc-v1"),
        (canary("calc-v3"), "calc-v1"),
        (decided("calc-v3", "hold", None), "calc-v1"),
        (decided("calc-v3", "promote", "calc-v3"), "calc-v3"),
        (version_event("other-v9", target="writer"), "calc-v3"),
        (decided("calc-v3", "rollback", None), None),  # back to the base model
    ]
    for event, expected in steps:
        store.write_events([event])
        assert parent(store) == expected, event


def test_a_prompt_canary_is_not_the_next_apo_jobs_parent(
    new_store: Callable[[], LightningStore],
) -> None:
    store = new_store()
    store.write_events(
        [version_event("p-1", "prompt", target="calc"), canary("p-2", 0.5, "prompt")]
    )
    in_force = prompt_in_force(store, "calc")
    assert in_force is not None
    assert in_force.version_id == "p-1"
    store.write_events([decided("p-2", "promote", "p-2", "prompt")])
    assert (prompt_in_force(store, "calc") or in_force).version_id == "p-2"
