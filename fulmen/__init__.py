"""Fulmen: continual training of production AI agents from their own traffic.

Instrumenting an agent::

    import fulmen

    @fulmen.rollout(task_id=lambda task: task["id"],
                    reward=lambda answer, task: float(answer == task["expected"]))
    def solve(task): ...                 # OpenAI client calls inside are captured

Following versions (hot-swapped from the control topic, see docs/versions.md)::

    system = fulmen.prompt("system", "You are a careful calculator.")
    fulmen.resources().model_name        # the model version in force
"""

from fulmen.errors import FulmenError
from fulmen.producers import (
    FulmenSettings,
    NoActiveRollout,
    RewardError,
    configure,
    emit_feedback,
    emit_reward,
    get_producer,
    last_llm_span_id,
    on_version,
    prompt,
    publish_version,
    resources,
    rollout,
    shutdown,
    step,
    tool,
    wait_for_version,
)

__all__ = [
    "FulmenError",
    "FulmenSettings",
    "NoActiveRollout",
    "RewardError",
    "configure",
    "emit_feedback",
    "emit_reward",
    "get_producer",
    "last_llm_span_id",
    "on_version",
    "prompt",
    "publish_version",
    "resources",
    "rollout",
    "shutdown",
    "step",
    "tool",
    "wait_for_version",
]
