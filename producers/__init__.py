"""The agent side: the SDK an agent imports to emit spans, rewards and rollout events.

Three lines instrument an agent (the `fulmen` package re-exports these)::

    @fulmen.rollout(task_id=lambda task: task.id)   # opens and finishes the rollout
    ...                                              # OpenAI client calls are captured
    fulmen.emit_reward(score)                        # scores it
"""

from fulmen.producers._context import NoActiveRollout
from fulmen.producers._emitter import Emitter, EmitterStats
from fulmen.producers._global import configure, get_producer, shutdown
from fulmen.producers._producer import Producer, transport_for
from fulmen.producers._rewards import emit_reward
from fulmen.producers._rollout import Rollout, rollout
from fulmen.producers._settings import FulmenSettings, ProducerSettings, RegistrySettings
from fulmen.producers._steps import step, tool
from fulmen.producers.transport import InProcessBus, InProcessTransport, Transport, TransportFull

__all__ = [
    "Emitter",
    "EmitterStats",
    "FulmenSettings",
    "InProcessBus",
    "InProcessTransport",
    "NoActiveRollout",
    "Producer",
    "ProducerSettings",
    "RegistrySettings",
    "Rollout",
    "Transport",
    "TransportFull",
    "configure",
    "emit_reward",
    "get_producer",
    "rollout",
    "shutdown",
    "step",
    "tool",
    "transport_for",
]
