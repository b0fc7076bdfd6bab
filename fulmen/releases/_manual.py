"""`fulmen rollback`: a person rolls a target back, from what the control topic says it runs."""

from __future__ import annotations

from fulmen.producers import (
    FulmenSettings,
    InProcessBus,
    ReleaseBoard,
    publish_control,
    version_meta,
)
from fulmen.releases._errors import ReleaseError
from fulmen.releases._topic import ControlView, control_reader
from fulmen.schemas import ReleaseDecision, VersionKind


def rollback_decision(
    board: ReleaseBoard,
    target_agent: str,
    *,
    kind: VersionKind = "model",
    to_version: str | None = None,
    reason: str = "rolled back by hand",
) -> ReleaseDecision:
    """The decision that rolls `target_agent` back: its canary of `kind` when one runs (back
    to the canary's parent), else its version of `kind` in force (back to that version's
    `parent_version`); `to_version` overrides where to. Raises `ReleaseError` when the target
    runs no version of `kind`, or `to_version` is not a `kind` version on the topic."""
    slots = board.slots_for(target_agent)
    canary = slots.canary.get(kind)
    stable = slots.stable.get(kind)
    if canary is not None:
        current = canary.event.version_id
        back_to = canary.parent.version_id if canary.parent is not None else None
    elif stable is not None:
        current, back_to = stable.version_id, stable.parent_version
    else:
        raise ReleaseError(f"{target_agent} runs no {kind} version: nothing to roll back")
    if to_version is not None:
        known = board.version(to_version)
        if known is None or known.kind != kind:
            raise ReleaseError(f"{to_version} is no {kind} version on the control topic")
        back_to = to_version
    return ReleaseDecision(
        meta=version_meta(),
        target_agent=target_agent,
        kind=kind,
        version_id=current,
        to_version=back_to,
        action="rollback",
        traffic_share=0.0,
        automatic=False,
        reason=reason,
    )


def rollback(
    settings: FulmenSettings,
    target_agent: str,
    *,
    kind: VersionKind = "model",
    to_version: str | None = None,
    bus: InProcessBus | None = None,
    timeout_s: float = 30.0,
) -> ReleaseDecision:
    """Read the control topic to its end, then publish the rollback of `target_agent`
    (`rollback_decision`) and return it."""
    view = ControlView(control_reader(settings, bus=bus), settings)
    try:
        view.catch_up(timeout_s)
    finally:
        view.close()
    decision = rollback_decision(view.board, target_agent, kind=kind, to_version=to_version)
    publish_control(decision, settings, bus=bus, timeout_s=timeout_s)
    return decision
