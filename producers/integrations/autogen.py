"""AutoGen (`autogen-agentchat`): its agents and tools report OpenTelemetry spans with GenAI
attributes (`invoke_agent <agent>`, `create_agent <agent>`, `execute_tool <tool>`, from
the `autogen-core` tracer); `instrument_autogen` routes them into the rollout in progress
(needs `autogen-core` and the `otel` extra).

    instrument_autogen()   # once, before the agents run

Model calls of `OpenAIChatCompletionClient` go through the `openai` client and are recorded
by the SDK's OpenAI capture (token ids and logprobs when the server returns them), nested
under the agent span that made them. AutoGen's tool spans carry the tool's name and call id,
not its arguments or result (those are in the LLM calls' messages).
"""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from fulmen.producers.otel import FulmenSpanProcessor

AUTOGEN_SCOPE = "autogen-core"
"""The tracer AutoGen's GenAI spans come from (its runtime's message spans are not recorded)."""


def instrument_autogen(provider: TracerProvider | None = None) -> TracerProvider:
    """Add a Fulmen span processor for AutoGen's spans to `provider`, by default the global
    tracer provider (one is installed when none is). Returns the provider it added to;
    call once per provider."""
    if provider is None:
        current = trace.get_tracer_provider()
        if isinstance(current, TracerProvider):
            provider = current
        else:
            provider = TracerProvider()
            trace.set_tracer_provider(provider)
    provider.add_span_processor(FulmenSpanProcessor(scopes={AUTOGEN_SCOPE}))
    return provider
