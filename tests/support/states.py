"""Helpers over the stream worker's per-rollout state."""

from __future__ import annotations

from fulmen.streams import AssemblyPolicy, RolloutState, assemble


def next_episodes(state: RolloutState) -> list[tuple[object, ...]]:
    """Each attempt's next episode (of those whose models are held), assembled on copies."""
    return [
        (a, assemble(b.model_copy(deep=True), AssemblyPolicy(), now=200.0))
        for a, b in sorted(state.attempts.items())
        if a not in state.released
    ]
