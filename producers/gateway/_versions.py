"""The versions in force for every agent behind one gateway.

An SDK process is one agent and follows the versions that target it. A gateway serves many
agents (named per request), so it keeps, for each (target agent, kind), the last version
published in topic order, and derives any agent's snapshot from those: the last version of
each kind whose target is that agent or every agent — the same rule as
`fulmen.producers.VersionState`, whose interface the control-topic follower drives.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterable

from fulmen.producers._resources import Resources, VersionListeners, VersionState
from fulmen.schemas import VersionEvent, VersionKind


class AgentVersions(VersionState):
    """`VersionState` of the gateway's own agent (`agent_name`), plus `for_agent(name)` for
    any other. Snapshots of other agents are cached (at most `max_agents`, the cache is
    dropped when full) and recomputed after every swap. Thread-safe: the follower applies,
    request handlers read."""

    def __init__(
        self,
        initial: Resources,
        *,
        agent_name: str,
        max_agents: int = 1_024,
        listeners: VersionListeners | None = None,
    ) -> None:
        super().__init__(initial, agent_name=agent_name, listeners=listeners)
        self._initial = initial
        self._max_agents = max_agents
        self._lock = threading.Lock()
        self._order = itertools.count()
        self._last: dict[tuple[str | None, VersionKind], tuple[int, VersionEvent]] = {}
        self._cache: dict[str, Resources] = {}

    def apply(self, events: Iterable[VersionEvent]) -> Resources | None:
        events = list(events)
        with self._lock:
            for event in events:
                self._last[(event.target_agent, event.kind)] = (next(self._order), event)
            self._cache = {}
        return super().apply(events)

    def for_agent(self, agent_name: str | None) -> Resources:
        """The snapshot in force for `agent_name` (None: the gateway's own agent)."""
        if agent_name is None or agent_name == self.agent_name:
            return self.current
        with self._lock:
            cached = self._cache.get(agent_name)
            if cached is not None:
                return cached
            in_force = sorted(
                (order, event)
                for (target, _kind), (order, event) in self._last.items()
                if target is None or target == agent_name
            )
            resources = self._initial
            for _order, event in in_force:
                resources = resources.with_version(event)
            if len(self._cache) >= self._max_agents:
                self._cache = {}
            self._cache[agent_name] = resources
            return resources
