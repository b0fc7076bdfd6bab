"""The demo's releases: each version a trainer job publishes starts as a canary on a share
of the agent's rollouts; after the next window of traffic the release rule (the one
`fulmen rollout` runs) compares it with the version it would replace, from the rewards
in the store, and promotes it or rolls it back before the next job picks its parent.

The demo looks once, after a window, so it forces a verdict then: an undecided canary is
promoted (its held-out gate passed and production said nothing against it) — the
production default, `on_inconclusive="rollback"`, waits for more traffic instead.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import fulmen
from fulmen.producers import Canary, InProcessBus, publish_control
from fulmen.releases import ReleaseRule, automatic_decision, canary_arms, decide
from fulmen.schemas import ArmEvidence, ReleaseAction, VersionEvent
from fulmen.serving import PolicyServer
from fulmen.store import LightningStore

_SWAP_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class ReleaseRecord:
    """What became of one canary: `action` by the rule (`code` and `reason` say why), with
    the evidence of each arm, the canary first."""

    version: str
    parent: str
    share: float
    action: ReleaseAction
    code: str
    reason: str
    arms: tuple[ArmEvidence, ...]


class DemoReleases:
    """Publishes each version as a canary (`share` of the rollouts, by task) and decides it
    after the next window with the release rule."""

    def __init__(
        self,
        bus: InProcessBus,
        store: LightningStore,
        server: PolicyServer,
        *,
        agent_name: str,
        share: float,
        alpha: float,
    ) -> None:
        self._bus = bus
        self._store = store
        self._server = server
        self._agent = agent_name
        self._share = share
        self._alpha = alpha
        self._canary: Canary | None = None
        self.records: list[ReleaseRecord] = []

    def publish(self, event: VersionEvent) -> None:
        """Load the version into the server, then start it as a canary beside the version
        in force (at once, for every rollout, with a share of 1.0)."""
        if event.model_name and event.artifact_uri:  # before any rollout asks for it
            self._server.load_adapter(event.model_name, Path(event.artifact_uri))
        parent = fulmen.get_producer().versions.stable.model_event
        canary = event.model_copy(update={"traffic_share": self._share})
        publish_control(canary, bus=self._bus)
        fulmen.wait_for_version(event.version_id, timeout_s=_SWAP_TIMEOUT_S)
        if canary.is_canary:
            self._canary = Canary(canary.target_agent, "model", canary, parent, time.time_ns())

    def decide(self) -> ReleaseRecord | None:
        """The rule's verdict on the canary from the episodes since it started, published
        as a decision (hold: the canary goes on); None when no canary runs."""
        if self._canary is None:
            return None
        canary = self._canary
        mine, theirs = canary_arms(self._store, canary, base_version="")
        looked = max(2, mine.scored)  # the one look: a verdict now
        rule = ReleaseRule(alpha=self._alpha, min_episodes=2, max_episodes=looked,
                           planned_episodes=looked, on_inconclusive="promote")  # fmt: skip
        verdict = decide(mine, theirs, rule)
        decision = automatic_decision(canary, verdict.action, verdict.reason, verdict.arms, rule)
        publish_control(decision, bus=self._bus)
        if verdict.action != "hold":
            self._canary = None
            if decision.to_version:
                fulmen.wait_for_version(
                    decision.to_version, timeout_s=_SWAP_TIMEOUT_S, everywhere=True
                )
        version, parent = canary.event.version_id, theirs.version_id
        record = ReleaseRecord(version, parent, self._share, verdict.action, verdict.code,
                               verdict.reason, verdict.arms)  # fmt: skip
        self.records.append(record)
        return record
