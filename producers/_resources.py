"""The resources an agent runs with (model and prompt versions, canaries beside them) and
their atomic swap.

Nothing here does I/O: `VersionState` is what the control-topic follower (`_control.py`)
applies control events to, and what `Producer.meta` reads the version ids from.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import assert_never

from fulmen.errors import FulmenError
from fulmen.producers._releases import KINDS, ReleaseBoard, Slots, route_bucket
from fulmen.schemas import ControlEvent, ServingAck, VersionEvent

logger = logging.getLogger("fulmen.producers")

VersionListener = Callable[["Resources"], None]
"""Told of a swap: receives the snapshot now in force (outside any canary)."""

routing_key: ContextVar[str | None] = ContextVar("fulmen_routing_key", default=None)
"""The routing key of the rollout in progress: which arm of a canary it runs (see
`route_bucket`). Set by `fulmen.rollout` (the user id, else the task id, else the rollout
id); None outside a rollout, which runs the stable versions."""


class VersionNotInForce(FulmenError, TimeoutError):
    """`wait_for_version` timed out before the version was in force."""


def _no_templates() -> Mapping[str, str]:
    return MappingProxyType({})


@dataclass(frozen=True)
class Resources:
    """An immutable snapshot of what the agent runs with now.

    A model version sets `model_version`, `model_name`, `artifact_uri` (and `model_event`);
    a prompt version sets `resources_version`, `prompt_templates` (and `prompt_event`).
    Before any version is applied, the version ids are the producer settings' and the rest
    is empty. `prompt_templates` is a read-only mapping.
    """

    model_version: str = ""
    resources_version: str = ""
    model_name: str | None = None
    artifact_uri: str | None = None
    prompt_templates: Mapping[str, str] = field(default_factory=_no_templates)
    model_event: VersionEvent | None = None
    """The model version's event in force (parent, algorithm, metrics…); None before any."""
    prompt_event: VersionEvent | None = None
    """The prompt version's event in force; None before any."""

    def __post_init__(self) -> None:
        if not isinstance(self.prompt_templates, MappingProxyType):
            templates = MappingProxyType(dict(self.prompt_templates))
            object.__setattr__(self, "prompt_templates", templates)

    def prompt(self, name: str, default: str) -> str:
        """The template `name` of the prompt version in force, or `default`."""
        return self.prompt_templates.get(name, default)

    def with_version(self, event: VersionEvent) -> Resources:
        """This snapshot with `event` applied (targeting is the caller's business)."""
        match event.kind:
            case "model":
                return replace(
                    self,
                    model_version=event.version_id,
                    model_name=event.model_name,
                    artifact_uri=event.artifact_uri,
                    model_event=event,
                )
            case "prompt":
                return replace(
                    self,
                    resources_version=event.version_id,
                    prompt_templates=MappingProxyType(dict(event.prompt_templates)),
                    prompt_event=event,
                )
            case unknown:
                assert_never(unknown)


def targets(event: VersionEvent, agent_name: str) -> bool:
    """Whether `event` applies to the agent `agent_name` (None targets every agent)."""
    return event.target_agent is None or event.target_agent == agent_name


class VersionListeners:
    """Callbacks told of swaps, in registration order. Thread-safe.

    A callback that raises is logged and the others still run.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._callbacks: list[VersionListener] = []

    def add(self, callback: VersionListener) -> Callable[[], None]:
        """Register `callback`; returns a function that unregisters it (idempotent)."""
        with self._lock:
            self._callbacks.append(callback)

        def remove() -> None:
            with self._lock:
                if callback in self._callbacks:
                    self._callbacks.remove(callback)

        return remove

    def notify(self, resources: Resources) -> None:
        with self._lock:
            callbacks = list(self._callbacks)
        for callback in callbacks:
            try:
                callback(resources)
            except Exception:  # an agent's callback must not stop the swap or the follower
                logger.exception("fulmen on_version callback %r failed", callback)


@dataclass(frozen=True)
class Routes:
    """What one agent runs: the stable snapshot and, for each canary, the snapshot of the
    rollouts routed to it. Immutable: a swap replaces the whole object."""

    stable: Resources
    canaries: tuple[VersionEvent, ...] = ()
    arms: Mapping[tuple[bool, ...], Resources] = field(default_factory=dict)
    """The snapshot of each combination of canaries (in `canaries` order) a rollout runs."""

    @classmethod
    def of(cls, slots: Slots, initial: Resources) -> Routes:
        stable = initial
        for kind in KINDS:
            if (event := slots.stable.get(kind)) is not None:
                stable = stable.with_version(event)
        canaries = tuple(slots.canary[kind].event for kind in KINDS if kind in slots.canary)
        arms: dict[tuple[bool, ...], Resources] = {}
        for index in range(2 ** len(canaries)):
            chosen = tuple(bool(index >> bit & 1) for bit in range(len(canaries)))
            resources = stable
            for canary, on in zip(canaries, chosen, strict=True):
                if on:
                    resources = resources.with_version(canary)
            arms[chosen] = resources
        return cls(stable, canaries, MappingProxyType(arms))

    def for_key(self, key: str | None) -> Resources:
        """The snapshot a rollout with routing key `key` runs (None: the stable one)."""
        if not self.canaries or key is None:
            return self.stable
        chosen = tuple(route_bucket(key, c.version_id) < c.traffic_share for c in self.canaries)
        return self.arms[chosen]

    def same_as(self, other: Routes) -> bool:
        """Whether both route to the same version events (nothing to swap)."""
        mine = (self.stable.model_event, self.stable.prompt_event, *self.canaries)
        theirs = (other.stable.model_event, other.stable.prompt_event, *other.canaries)
        return len(mine) == len(theirs) and all(a is b for a, b in zip(mine, theirs, strict=True))


class VersionState:
    """The versions in force for the agent `agent_name` (and, for a gateway, any agent),
    swapped atomically.

    Control events are folded by a `ReleaseBoard` in the order given. `current` is the
    snapshot of the rollout in progress: the stable versions, or a canary's for a rollout
    whose routing key falls in its share (`routing_key`). A snapshot is one attribute read,
    so a reader always gets one whole swap (never a model version of one with a prompt
    version of another) without a lock.

    With `await_replicas` > 0 a model version that names a model is held back until that
    many replicas of `pool` acknowledged it loaded (`ServingAck`), then applied where it
    stood in topic order unless a later version of its kind replaced it meanwhile.
    `apply` swaps once, then tells `listeners` before it wakes `wait_for` callers.
    """

    def __init__(
        self,
        initial: Resources | None = None,
        *,
        agent_name: str = "",
        listeners: VersionListeners | None = None,
        await_replicas: int = 0,
        pool: str = "default",
        max_agents: int = 1_024,
    ) -> None:
        self.agent_name = agent_name
        self.listeners = listeners or VersionListeners()
        self.initial = initial or Resources()
        self._await_replicas = await_replicas
        self._pool = pool
        self._max_agents = max_agents
        self._board = ReleaseBoard()
        self._held: list[VersionEvent] = []
        self._routes = Routes.of(Slots(), self.initial)
        self._others: dict[str, Routes] = {}
        self._version_of_model: dict[str, str] = {}
        self._changed = threading.Condition(threading.RLock())

    @property
    def current(self) -> Resources:
        """The snapshot of the rollout in progress (the stable one outside a rollout)."""
        return self._routes.for_key(routing_key.get())

    @property
    def stable(self) -> Resources:
        """The snapshot outside any canary."""
        return self._routes.stable

    @property
    def routes(self) -> Routes:
        return self._routes

    @property
    def version_of_model(self) -> dict[str, str]:
        """Each model name a model version published (for any agent: whoever's model answers
        a call served it), to that version's id; the latest publication of a name wins."""
        return dict(self._version_of_model)

    @property
    def held_back(self) -> list[str]:
        """Versions waiting for serving replicas' acknowledgements, in topic order."""
        return [event.version_id for event in self._held]

    def for_agent(self, agent_name: str | None, key: str | None = None) -> Resources:
        """The snapshot the agent `agent_name` (None: this state's own) runs for a rollout
        with routing key `key`."""
        if agent_name is None or agent_name == self.agent_name:
            return self._routes.for_key(key)
        routes = self._others.get(agent_name)
        if routes is None:
            with self._changed:
                routes = Routes.of(self._board.slots_for(agent_name), self.initial)
                if len(self._others) >= self._max_agents:
                    self._others = {}
                self._others[agent_name] = routes
        return routes.for_key(key)

    def apply(self, events: Iterable[ControlEvent]) -> Resources | None:
        """Fold `events`; returns the new stable snapshot, or None when nothing this agent
        runs changed (then nothing is swapped and no one is told)."""
        with self._changed:
            for event in events:
                if isinstance(event, VersionEvent) and event.kind == "model" and event.model_name:
                    self._version_of_model[event.model_name] = event.version_id
                if isinstance(event, VersionEvent):
                    self._held = [h for h in self._held if not _replaces(event, h)]
                    if self._must_wait(event):
                        self._held.append(event)
                        continue
                self._board.apply(event)
                if isinstance(event, ServingAck):
                    self._release_held()
            self._others = {}
            routes = Routes.of(self._board.slots_for(self.agent_name), self.initial)
            if routes.same_as(self._routes):
                return None
            self._routes = routes
            self.listeners.notify(routes.stable)
            self._changed.notify_all()
            return routes.stable

    def wait_for(self, version_id: str, timeout_s: float, *, everywhere: bool = False) -> Resources:
        """Wait until `version_id` is a model or prompt version in force: for some rollouts
        (a canary) or, with `everywhere`, for every one; returns the stable snapshot, or
        raises `VersionNotInForce` after `timeout_s`."""

        def in_force() -> bool:
            routes = self._routes
            stable = {
                routes.stable.model_version: "model",
                routes.stable.resources_version: "prompt",
            }
            canaries = {c.version_id: c.kind for c in routes.canaries}
            if not everywhere:
                return version_id in stable or version_id in canaries
            kind = stable.get(version_id)
            return kind is not None and kind not in canaries.values()

        with self._changed:
            if not self._changed.wait_for(in_force, timeout_s):
                current = self._routes.stable
                raise VersionNotInForce(
                    f"version {version_id!r} not in force after {timeout_s} s (model "
                    f"{current.model_version!r}, prompts {current.resources_version!r})"
                )
            return self._routes.stable

    def _must_wait(self, event: VersionEvent) -> bool:
        if self._await_replicas <= 0 or event.kind != "model" or not event.model_name:
            return False
        if not targets(event, self.agent_name):
            return False
        loaded = self._board.loaded_replicas(event.model_name, self._pool)
        return len(loaded) < self._await_replicas

    def _release_held(self) -> None:
        ready = [event for event in self._held if not self._must_wait(event)]
        self._held = [event for event in self._held if event not in ready]
        for event in ready:
            self._board.apply(event)


def _replaces(later: VersionEvent, earlier: VersionEvent) -> bool:
    """Whether `later` makes `earlier` moot: same target and kind, and a full version
    (which ends canaries too) or a canary replacing a canary."""
    same_slot = later.kind == earlier.kind and later.target_agent == earlier.target_agent
    return same_slot and (not later.is_canary or earlier.is_canary)
