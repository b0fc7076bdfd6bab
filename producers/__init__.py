"""The agent side: the SDK an agent imports to emit spans, rewards and rollout events.

Three lines instrument an agent (the `fulmen` package re-exports these)::

    @fulmen.rollout(task_id=lambda task: task.id,   # opens and finishes the rollout
                    reward=lambda answer, task: score(answer, task))  # scores its result
    def solve(task): ...                             # OpenAI client calls are captured

(or `fulmen.emit_reward(value)` anywhere inside the rollout; `fulmen.emit_feedback("up")` for
thumbs up or down, with an optional corrected answer, during the rollout or later).

Versions published on the control topic (`publish_version`) are followed in the background
and hot-swapped: `resources()`, `prompt()`, `on_version()`, `wait_for_version()`.
"""

from fulmen.producers._context import NoActiveRollout
from fulmen.producers._control import (
    CONTROL_KEY,
    VersionFollower,
    VersionNotPublished,
    decode_control,
    on_version,
    prompt,
    publish_control,
    publish_version,
    resources,
    start_following,
    version_meta,
    wait_for_version,
)
from fulmen.producers._control_readers import (
    ControlReader,
    InProcessControlReader,
    KafkaControlReader,
)
from fulmen.producers._emitter import Emitter
from fulmen.producers._emitter_stats import EmitterStats
from fulmen.producers._feedback import Thumb, emit_feedback
from fulmen.producers._global import configure, get_producer, shutdown
from fulmen.producers._metrics import ProducerCollector
from fulmen.producers._producer import Producer, codec_for, transport_for
from fulmen.producers._releases import Canary, ReleaseBoard, route_bucket
from fulmen.producers._resources import (
    Resources,
    Routes,
    VersionListener,
    VersionListeners,
    VersionNotInForce,
    VersionState,
    routing_key,
)
from fulmen.producers._rewards import RewardError, emit_reward, last_llm_span_id
from fulmen.producers._rollout import Rollout, rollout
from fulmen.producers._settings import FulmenSettings, ProducerSettings, RegistrySettings
from fulmen.producers._steps import step, tool
from fulmen.producers.redaction import Redactor, RedactorLoadError, redact_pii
from fulmen.producers.transport import InProcessBus, InProcessTransport, Transport, TransportFull

__all__ = [
    "CONTROL_KEY",
    "Canary",
    "ControlReader",
    "Emitter",
    "EmitterStats",
    "FulmenSettings",
    "InProcessBus",
    "InProcessControlReader",
    "InProcessTransport",
    "KafkaControlReader",
    "NoActiveRollout",
    "Producer",
    "ProducerCollector",
    "ProducerSettings",
    "Redactor",
    "RedactorLoadError",
    "RegistrySettings",
    "ReleaseBoard",
    "Resources",
    "RewardError",
    "Rollout",
    "Routes",
    "Thumb",
    "Transport",
    "TransportFull",
    "VersionFollower",
    "VersionListener",
    "VersionListeners",
    "VersionNotInForce",
    "VersionNotPublished",
    "VersionState",
    "codec_for",
    "configure",
    "decode_control",
    "emit_feedback",
    "emit_reward",
    "get_producer",
    "last_llm_span_id",
    "on_version",
    "prompt",
    "publish_control",
    "publish_version",
    "redact_pii",
    "resources",
    "rollout",
    "route_bucket",
    "routing_key",
    "shutdown",
    "start_following",
    "step",
    "tool",
    "transport_for",
    "version_meta",
    "wait_for_version",
]
