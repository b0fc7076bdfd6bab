"""Releases: which version of each kind every target runs, and which canary beside it.

`ReleaseBoard` folds the control topic's events (versions, release decisions, serving
replicas' acknowledgements) in topic order, for every target at once: what the release
controller and the serving replicas read. An agent reads the same fold through
`ReleaseBoard.slots_for(agent_name)`. Nothing here does I/O.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field

from fulmen.schemas import ControlEvent, ReleaseDecision, ServingAck, VersionEvent, VersionKind

logger = logging.getLogger("fulmen.producers")

KINDS: tuple[VersionKind, ...] = ("model", "prompt")


def route_bucket(key: str, version_id: str) -> float:
    """Where `key` (a rollout's routing key) falls in [0, 1) for the canary `version_id`.

    A rollout runs the canary when its bucket is below the canary's `traffic_share`. The
    hash is stable across processes and machines, so a user (or task) sticks to one arm for
    the whole canary; salting it with the version id gives every canary its own users.
    """
    digest = hashlib.blake2b(f"{version_id}\0{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


@dataclass(frozen=True)
class Canary:
    """A version running on a share of its target's rollouts beside `parent`."""

    target_agent: str | None
    kind: VersionKind
    event: VersionEvent
    parent: VersionEvent | None
    """The version of that target and kind in force when the canary started (None: the
    base deployment, the agents' own settings)."""
    since_ns: int
    """When the canary was published (its envelope's `emitted_at_unix_nano`)."""


@dataclass
class Slots:
    """One target's versions in force: a stable version and at most one canary per kind."""

    stable: dict[VersionKind, VersionEvent] = field(default_factory=dict)
    canary: dict[VersionKind, Canary] = field(default_factory=dict)


class ReleaseBoard:
    """The fold of the control topic, in topic order, for every target.

    A version with `traffic_share` 1.0 becomes the stable version of its target and kind and
    ends any canary of that kind; below 1.0 it becomes the canary (replacing an earlier one),
    beside the stable version in force. A decision to promote makes the promoted version
    stable (and ends the canary); to roll back ends the canary and makes `to_version` stable
    (None: back to the base deployment); to hold changes nothing. An untargeted event
    (`target_agent` None) applies to every target: agents see it through `slots_for`.
    """

    def __init__(self) -> None:
        self._targets: dict[str | None, Slots] = {}
        self._versions: dict[str, VersionEvent] = {}
        self._loaded: dict[tuple[str, str], set[str]] = {}
        self._failed: dict[str, ServingAck] = {}
        self._decided: set[str] = set()

    def apply(self, event: ControlEvent) -> None:
        match event:
            case VersionEvent():
                self._apply_version(event)
            case ReleaseDecision():
                self._apply_decision(event)
            case ServingAck():
                self._apply_ack(event)

    def version(self, version_id: str) -> VersionEvent | None:
        """The last publication of `version_id`, if any."""
        return self._versions.get(version_id)

    def stable(self, target_agent: str | None, kind: VersionKind) -> VersionEvent | None:
        """The version of `kind` that `target_agent`'s own slot holds (untargeted versions
        are in the slot of None)."""
        slots = self._targets.get(target_agent)
        return None if slots is None else slots.stable.get(kind)

    def canaries(self) -> list[Canary]:
        """Every canary running now, each once (an untargeted one is in every target's
        slot), in no particular order."""
        running = {
            (c.target_agent, c.event.version_id): c
            for slots in self._targets.values()
            for c in slots.canary.values()
        }
        return list(running.values())

    def decided(self, version_id: str) -> bool:
        """Whether a promote or rollback decision named `version_id` (a canary decided on
        stays decided, even if it is published again)."""
        return version_id in self._decided

    def slots_for(self, agent_name: str | None) -> Slots:
        """What the agent `agent_name` runs: its own slot, with untargeted versions and
        canaries in force where they were published after its targeted ones (None: what an
        agent no version targeted runs, the untargeted slot)."""
        slots = self._targets.get(agent_name) or self._targets.get(None)
        return Slots() if slots is None else slots

    def needed_model_names(self) -> set[str]:
        """The model names of every stable and canary model version of every target."""
        names = set()
        for slots in self._targets.values():
            stable = slots.stable.get("model")
            canary = slots.canary.get("model")
            for event in (stable, canary.event if canary else None):
                if event is not None and event.model_name:
                    names.add(event.model_name)
        return names

    def loaded_replicas(self, model_name: str, pool: str) -> set[str]:
        """The replicas of `pool` that acknowledged `model_name` loaded (and not unloaded
        since)."""
        return set(self._loaded.get((pool, model_name), set()))

    def failed_load(self, model_name: str) -> ServingAck | None:
        """The last `failed` acknowledgement of `model_name`, unless a replica loaded it
        since."""
        return self._failed.get(model_name)

    def _slots(self, target: str | None) -> list[Slots]:
        """The slots an event for `target` changes: its own, and for an untargeted event
        every target's (an untargeted version published after a targeted one replaces it)."""
        if target not in self._targets:  # a new target starts from the untargeted slot
            untargeted = self._targets.get(None, Slots())
            self._targets[target] = Slots(dict(untargeted.stable), dict(untargeted.canary))
        return list(self._targets.values()) if target is None else [self._targets[target]]

    def _apply_version(self, event: VersionEvent) -> None:
        self._versions[event.version_id] = event
        for slots in self._slots(event.target_agent):
            if event.is_canary:
                parent = slots.stable.get(event.kind)
                slots.canary[event.kind] = Canary(
                    event.target_agent, event.kind, event, parent, event.meta.emitted_at_unix_nano
                )
            else:
                slots.stable[event.kind] = event
                slots.canary.pop(event.kind, None)

    def _apply_decision(self, decision: ReleaseDecision) -> None:
        if decision.action == "hold":
            return
        self._decided.add(decision.version_id)
        wanted = decision.to_version
        if decision.action == "promote":
            wanted = wanted or decision.version_id
        after = None if wanted is None else self._versions.get(wanted)
        if wanted is not None and after is None:
            logger.warning(
                "fulmen: a %s decision names version %r, which is not on the control topic; "
                "only the canary of %r ends",
                decision.action,
                wanted,
                decision.version_id,
            )
        for slots in self._slots(decision.target_agent):
            slots.canary.pop(decision.kind, None)
            if after is not None:
                slots.stable[decision.kind] = after
            elif wanted is None:
                slots.stable.pop(decision.kind, None)

    def _apply_ack(self, ack: ServingAck) -> None:
        replicas = self._loaded.setdefault((ack.pool, ack.model_name), set())
        if ack.status == "loaded":
            replicas.add(ack.replica_id)
            self._failed.pop(ack.model_name, None)
        else:
            replicas.discard(ack.replica_id)
            if ack.status == "failed":
                self._failed[ack.model_name] = ack
