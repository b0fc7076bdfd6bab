"""Fulmen: continual training of production AI agents from their own traffic.

Instrumenting an agent::

    import fulmen

    @fulmen.rollout(task_id=lambda task: task["id"])
    def solve(task): ...                 # OpenAI client calls inside are captured
        fulmen.emit_reward(1.0)
"""

from fulmen.errors import FulmenError
from fulmen.producers import (
    FulmenSettings,
    NoActiveRollout,
    configure,
    emit_reward,
    get_producer,
    rollout,
    shutdown,
    step,
    tool,
)

__all__ = [
    "FulmenError",
    "FulmenSettings",
    "NoActiveRollout",
    "configure",
    "emit_reward",
    "get_producer",
    "rollout",
    "shutdown",
    "step",
    "tool",
]
