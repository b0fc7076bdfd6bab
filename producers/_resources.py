"""The resources an agent runs with (model and prompt versions) and their atomic swap.

Nothing here does I/O: `VersionState` is what the control-topic follower (`_control.py`)
applies versions to, and what `Producer.meta` reads the version ids from.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import assert_never

from fulmen.errors import FulmenError
from fulmen.schemas import VersionEvent

logger = logging.getLogger("fulmen.producers")

VersionListener = Callable[["Resources"], None]
"""Told of a swap: receives the snapshot now in force."""


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


class VersionState:
    """The resources in force for the agent `agent_name`, swapped atomically.

    `current` is one attribute read, so a reader always gets one whole snapshot (never a
    model version of one swap with a prompt version of another) without taking a lock.
    `apply` folds events in the order given — the last one of each kind wins — swaps once,
    then tells `listeners` before it wakes `wait_for` callers.
    """

    def __init__(
        self,
        initial: Resources | None = None,
        *,
        agent_name: str = "",
        listeners: VersionListeners | None = None,
    ) -> None:
        self.agent_name = agent_name
        self.listeners = listeners or VersionListeners()
        self.initial = initial or Resources()
        self._current = self.initial
        self._version_of_model: dict[str, str] = {}
        self._changed = threading.Condition(threading.RLock())

    @property
    def current(self) -> Resources:
        return self._current

    @property
    def version_of_model(self) -> dict[str, str]:
        """Each model name a model version published (for any agent: whoever's model answers
        a call served it), to that version's id; the latest publication of a name wins."""
        return dict(self._version_of_model)

    def apply(self, events: Iterable[VersionEvent]) -> Resources | None:
        """Apply the events that target this agent; returns the new snapshot, or None when
        none of them did (then nothing is swapped and no one is told)."""
        with self._changed:
            applied = False
            resources = self._current
            for event in events:
                if event.kind == "model" and event.model_name:
                    self._version_of_model[event.model_name] = event.version_id
                if targets(event, self.agent_name):
                    resources = resources.with_version(event)
                    applied = True
            if not applied:
                return None
            self._current = resources
            self.listeners.notify(resources)
            self._changed.notify_all()
            return resources

    def wait_for(self, version_id: str, timeout_s: float) -> Resources:
        """Wait until `version_id` is the model or prompt version in force; returns that
        snapshot, or raises `VersionNotInForce` after `timeout_s`."""

        def in_force() -> bool:
            current = self._current
            return version_id in (current.model_version, current.resources_version)

        with self._changed:
            if not self._changed.wait_for(in_force, timeout_s):
                current = self._current
                raise VersionNotInForce(
                    f"version {version_id!r} not in force after {timeout_s} s (model "
                    f"{current.model_version!r}, prompts {current.resources_version!r})"
                )
            return self._current
