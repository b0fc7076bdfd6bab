"""The release controller: follows the control topic and, every `interval_s`, decides each
canary running from the store's production episodes."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

from fulmen.producers import (
    Canary,
    ControlReader,
    FulmenSettings,
    InProcessBus,
    publish_control,
)
from fulmen.releases._decision import automatic_decision, canary_arms
from fulmen.releases._rule import ReleaseRule, Verdict, decide
from fulmen.releases._settings import ReleaseSettings
from fulmen.releases._topic import ControlView, control_reader
from fulmen.schemas import ArmEvidence, ReleaseAction, ReleaseDecision
from fulmen.store import LightningStore

logger = logging.getLogger("fulmen.releases")

DecisionListener = Callable[[ReleaseDecision], None]


class ReleaseController:
    """Decides canaries: a promote or rollback is published on the control topic (agents
    and serving replicas apply it) and kept in the store with its evidence; a hold is
    recorded only when its reason changed since the last one on the topic.

    A canary whose model a serving replica failed to load is rolled back at once. A canary
    already decided on the topic is never decided again, across restarts too: the topic is
    read from its beginning.
    """

    def __init__(
        self,
        options: ReleaseSettings,
        settings: FulmenSettings,
        *,
        store: LightningStore,
        bus: InProcessBus | None = None,
        reader: ControlReader | None = None,
        on_decision: DecisionListener | None = None,
    ) -> None:
        self._options = options
        self._rule: ReleaseRule = options.rule()
        self._settings = settings
        self._store = store
        self._bus = bus
        self._view = ControlView(reader or control_reader(settings, bus=bus), settings)
        self._on_decision = on_decision
        self._published: set[str] = set()  # decided here, perhaps not read back yet

    def tick(self) -> list[ReleaseDecision]:
        """One pass: read the control topic to its end, then decide each canary running.
        Returns the decisions published (holds included)."""
        self._view.catch_up()
        decisions = []
        for canary in sorted(self._view.board.canaries(), key=lambda c: c.since_ns):
            version_id = canary.event.version_id
            if self._view.board.decided(version_id) or version_id in self._published:
                continue
            decision = self._decide(canary)
            if decision is None:
                continue
            self._publish(decision)
            decisions.append(decision)
        return decisions

    def run(self, stop: threading.Event) -> None:
        """Pass after pass, `interval_s` apart, until `stop` is set; a failed pass (the
        broker or the store unreachable) is logged and the next one tries again."""
        while not stop.is_set():
            try:
                self.tick()
            except Exception:
                logger.exception("fulmen release pass failed; trying again")
            stop.wait(self._options.interval_s)

    def close(self) -> None:
        self._view.close()

    def _decide(self, canary: Canary) -> ReleaseDecision | None:
        """The decision to publish on `canary` now; None for a hold already recorded."""
        failed = None
        if canary.kind == "model" and canary.event.model_name:
            failed = self._view.board.failed_load(canary.event.model_name)
        if failed is not None:
            reason = (
                f"serving replica {failed.replica_id} ({failed.pool}) failed to load "
                f"{failed.model_name}: {failed.detail or 'no detail'}"
            )
            return self._decision(canary, "rollback", reason, ())
        verdict = self._verdict(canary)
        if verdict.action == "hold" and self._view.last_hold.get(canary.event.version_id) == (
            verdict.reason
        ):
            return None
        return self._decision(canary, verdict.action, verdict.reason, verdict.arms)

    def _verdict(self, canary: Canary) -> Verdict:
        arms = canary_arms(self._store, canary, base_version=self._options.base_version)
        return decide(*arms, self._rule)

    def _decision(
        self,
        canary: Canary,
        action: ReleaseAction,
        reason: str,
        arms: Sequence[ArmEvidence],
    ) -> ReleaseDecision:
        return automatic_decision(canary, action, reason, arms, self._rule)

    def _publish(self, decision: ReleaseDecision) -> None:
        publish_control(
            decision, self._settings, bus=self._bus, timeout_s=self._options.publish_timeout_s
        )
        # On the in-process transport the embedded runner stores what is on the bus.
        if self._settings.transport == "kafka":
            self._store.write_events([decision])
        if decision.action == "hold":
            self._view.last_hold[decision.version_id] = decision.reason
        else:
            self._published.add(decision.version_id)
        logger.info(
            "fulmen release: %s %s version %s of %s: %s",
            decision.action,
            decision.kind,
            decision.version_id,
            decision.target_agent or "every agent",
            decision.reason,
        )
        if self._on_decision is not None:
            self._on_decision(decision)
