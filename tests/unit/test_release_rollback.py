"""`fulmen rollback`'s decision from the control topic's fold, and the release settings."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from fulmen.producers import ReleaseBoard
from fulmen.releases import ReleaseError, ReleaseRule, ReleaseSettings, rollback_decision
from fulmen.schemas import ControlEvent
from tests.support.events import version_event


def board_of(*events: ControlEvent) -> ReleaseBoard:
    board = ReleaseBoard()
    for event in events:
        board.apply(event)
    return board


def test_a_running_canary_goes_back_to_its_parent() -> None:
    canary = version_event("v2", target="calc").model_copy(update={"traffic_share": 0.1})
    board = board_of(version_event("v1", target="calc"), canary)
    decision = rollback_decision(board, "calc")
    assert (decision.version_id, decision.to_version, decision.action) == ("v2", "v1", "rollback")
    assert (decision.automatic, decision.traffic_share, decision.target_agent) == (
        False, 0.0, "calc"
    )  # fmt: skip


def test_without_a_canary_the_version_in_force_goes_back_to_its_parent_or_base() -> None:
    v2 = version_event("v2", target="calc").model_copy(update={"parent_version": "v1"})
    board = board_of(version_event("v1", target="calc"), v2)
    assert rollback_decision(board, "calc").to_version == "v1"
    assert rollback_decision(board, "calc", to_version="v1").version_id == "v2"
    alone = board_of(version_event("v1"))  # untargeted: every agent runs it
    decision = rollback_decision(alone, "calc")
    assert (decision.version_id, decision.to_version) == ("v1", None)


def test_nothing_to_roll_back_or_an_unknown_version_is_an_error() -> None:
    board = board_of(version_event("v1", target="calc"), version_event("p1", "prompt"))
    with pytest.raises(ReleaseError, match="writer runs no model version"):
        rollback_decision(board_of(version_event("v1", target="calc")), "writer")
    with pytest.raises(ReleaseError, match="v9 is no model version"):
        rollback_decision(board, "calc", to_version="v9")
    with pytest.raises(ReleaseError, match="p1 is no model version"):
        rollback_decision(board, "calc", to_version="p1")


def test_release_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FULMEN_RELEASE__ALPHA", "0.01")
    monkeypatch.setenv("FULMEN_RELEASE__ON_INCONCLUSIVE", "hold")
    monkeypatch.setenv("FULMEN_RELEASE__INTERVAL_S", "5")
    settings = ReleaseSettings()
    assert (settings.alpha, settings.interval_s) == (0.01, 5.0)
    assert settings.rule() == ReleaseRule(alpha=0.01, on_inconclusive="hold")
    monkeypatch.setenv("FULMEN_RELEASE__ON_INCONCLUSIVE", "maybe")
    with pytest.raises(ValidationError, match="on_inconclusive"):
        ReleaseSettings()
