"""Agent-framework integrations: each records a framework's agent steps and tool calls as
spans of the Fulmen rollout in progress, its LLM calls through the SDK's OpenAI capture.

One module per framework, imported on first use so Fulmen's core never needs the framework
(install `fulmen[integrations]`):

- `FulmenCallbackHandler` (`.langchain`): LangChain and LangGraph callbacks.
- `FulmenTracingProcessor` (`.openai_agents`): the OpenAI Agents SDK's tracing processor.
- `instrument_autogen` (`.autogen`): AutoGen's OpenTelemetry spans.
- `FulmenSpanProcessor` (`fulmen.producers.otel`): anything else that speaks OpenTelemetry
  (GenAI, OpenInference and OpenLLMetry attributes).

docs/integrations.md says what each captures and what not.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fulmen.producers.integrations.autogen import instrument_autogen
    from fulmen.producers.integrations.langchain import FulmenCallbackHandler
    from fulmen.producers.integrations.openai_agents import FulmenTracingProcessor
    from fulmen.producers.otel import FulmenSpanProcessor

_MODULES = {
    "FulmenCallbackHandler": "fulmen.producers.integrations.langchain",
    "FulmenTracingProcessor": "fulmen.producers.integrations.openai_agents",
    "instrument_autogen": "fulmen.producers.integrations.autogen",
    "FulmenSpanProcessor": "fulmen.producers.otel",
}

__all__ = [
    "FulmenCallbackHandler",
    "FulmenSpanProcessor",
    "FulmenTracingProcessor",
    "instrument_autogen",
]


def __getattr__(name: str) -> Any:
    """Import a framework's module only when its integration is asked for."""
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
