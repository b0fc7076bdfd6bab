"""The zero-code gateway: an OpenAI-compatible proxy that turns any agent's LLM traffic
into Fulmen events. Agents in any language change only their base URL (docs/gateway.md)::

    gateway = open_gateway(GatewaySettings(upstream_url="http://vllm:8000/v1"))
    serve_gateway(gateway, host="0.0.0.0", port=8100)   # or: fulmen gateway --upstream …

    # an agent: base_url = http://gateway:8100/rollouts/<rollout id>/v1
"""

from fulmen.producers.gateway._admission import GatewayStats
from fulmen.producers.gateway._app import Gateway
from fulmen.producers.gateway._identity import (
    AGENT_HEADER,
    ATTEMPT_HEADER,
    ROLLOUT_HEADER,
    BadIdentity,
    Identity,
    parse_path,
    rollout_trace,
    with_headers,
)
from fulmen.producers.gateway._rewrite import Added, Rewritten, rewrite, strip
from fulmen.producers.gateway._rollouts import FinishRollout, PostReward, StartRollout
from fulmen.producers.gateway._run import (
    GatewayError,
    gateway_in_thread,
    open_gateway,
    serve_gateway,
)
from fulmen.producers.gateway._settings import GatewaySettings
from fulmen.producers.gateway._sse import SseDecoder, SseEvent

__all__ = [
    "AGENT_HEADER",
    "ATTEMPT_HEADER",
    "ROLLOUT_HEADER",
    "Added",
    "BadIdentity",
    "FinishRollout",
    "Gateway",
    "GatewayError",
    "GatewaySettings",
    "GatewayStats",
    "Identity",
    "PostReward",
    "Rewritten",
    "SseDecoder",
    "SseEvent",
    "StartRollout",
    "gateway_in_thread",
    "open_gateway",
    "parse_path",
    "rewrite",
    "rollout_trace",
    "serve_gateway",
    "strip",
    "with_headers",
]
