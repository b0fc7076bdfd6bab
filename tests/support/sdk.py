"""What the producer SDK emitted on an in-process bus."""

from __future__ import annotations

import fulmen
from fulmen.producers import InProcessBus
from fulmen.schemas import Event, SingleObjectCodec


def emitted(bus: InProcessBus) -> list[Event]:
    """Every span, reward, rollout and feedback event on `bus`, in emit order."""
    assert fulmen.get_producer().flush(5)
    codec = SingleObjectCodec()
    events = [
        codec.decode(m.value, topic=topic)
        for topic in ("fulmen.spans", "fulmen.rewards", "fulmen.rollouts", "fulmen.feedback")
        for m in bus.read(topic, 0, max_messages=10_000, timeout_s=0)
    ]
    return sorted(events, key=lambda e: e.meta.sequence)
