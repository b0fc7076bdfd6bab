"""Helpers over the stream worker's per-rollout state."""

from __future__ import annotations

from typing import Any

from fulmen.schemas import Event, SingleObjectCodec
from fulmen.streams import AssemblyPolicy, RolloutState, assemble
from fulmen.streams._changelog import fold_all, load_record

CODEC = SingleObjectCodec()
Log = list[tuple[bytes, bytes | None]]
"""Changelog records as sent, in order: key and value (None: a tombstone)."""


def add_encoded(state: RolloutState, events: list[Event], *, now: float = 100.0) -> None:
    """Add each event (none a duplicate) with its single-object bytes."""
    for event in events:
        assert state.add(event, CODEC.encode(event, topic=""), now=now)


def recover(log: Log) -> tuple[dict[bytes, Any], list[bytes]]:
    """What a worker holds after reading the compacted changelog back: the states and the
    keys of orphaned segments."""
    compacted: dict[bytes, bytes] = {}
    for key, value in log:
        if value is None:
            compacted.pop(key, None)
        else:
            compacted[key] = value
    data = {key: load_record(value) for key, value in compacted.items()}
    orphans = fold_all(data)
    return data, orphans


def next_episodes(state: RolloutState) -> list[tuple[object, ...]]:
    """Each attempt's next episode (of those whose models are held), assembled on copies."""
    return [
        (a, assemble(b.model_copy(deep=True), AssemblyPolicy(), now=200.0))
        for a, b in sorted(state.attempts.items())
        if a not in state.released
    ]
