"""LangChain and LangGraph: a callback handler that records chains (LangGraph nodes, agent
steps) and tool calls as spans of the rollout in progress (needs `langchain-core`).

    handler = FulmenCallbackHandler()
    graph.invoke(state, config={"callbacks": [handler]})

LLM calls made through the `openai` client (`ChatOpenAI`, `AzureChatOpenAI`) are recorded by
the SDK's OpenAI capture, with token ids and logprobs when the server returns them, and nest
under the step that made them. Runs tagged `langsmith:hidden` (LangGraph's internal
plumbing) are not recorded; their children nest under the nearest recorded run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler

from fulmen.producers._context import to_json
from fulmen.producers.integrations._framework_spans import FrameworkSpans
from fulmen.schemas import ToolCall

_HIDDEN = "langsmith:hidden"


class FulmenCallbackHandler(BaseCallbackHandler):
    """Pass in `config={"callbacks": [handler]}` (or a model's/graph's `callbacks=`). One
    handler may serve every rollout of a process: runs outside a rollout are ignored."""

    run_inline = True  # called in the caller's context, so the rollout and nesting follow

    def __init__(self) -> None:
        self._spans = FrameworkSpans()
        self._tools: dict[UUID, tuple[str, str, str | None]] = {}

    def on_chain_start(
        self,
        serialized: dict[str, Any] | None,
        inputs: dict[str, Any] | Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        if _HIDDEN in (tags or ()):
            return
        self._spans.open(run_id, name=_run_name(serialized, kwargs), parent_key=parent_run_id)

    def on_chain_end(self, outputs: dict[str, Any] | Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._spans.close(run_id)

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._spans.close(run_id, error=f"{type(error).__name__}: {error}")

    def on_tool_start(
        self,
        serialized: dict[str, Any] | None,
        input_str: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        inputs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        name = _run_name(serialized, kwargs)
        arguments = to_json(inputs) if inputs is not None else to_json(input_str)
        self._tools[run_id] = (name, arguments, kwargs.get("tool_call_id"))
        self._spans.open(run_id, name=f"execute_tool {name}", parent_key=parent_run_id)

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._spans.close(run_id, tool=self._tool_call(run_id, _tool_result(output)))

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        error_text = f"{type(error).__name__}: {error}"
        self._spans.close(run_id, error=error_text, tool=self._tool_call(run_id, "null"))

    def _tool_call(self, run_id: UUID, result: str) -> ToolCall | None:
        started = self._tools.pop(run_id, None)
        if started is None:
            return None
        name, arguments, call_id = started
        return ToolCall(name=name, call_id=call_id, arguments=arguments, result=result)


def _run_name(serialized: Mapping[str, Any] | None, kwargs: Mapping[str, Any]) -> str:
    """LangChain passes the run's name as `name=`; older callers only in `serialized`."""
    name = kwargs.get("name") or (serialized or {}).get("name")
    if name:
        return str(name)
    path: Sequence[str] = (serialized or {}).get("id") or ["chain"]
    return str(path[-1])


def _tool_result(output: Any) -> str:
    """A tool's output as JSON; a `ToolMessage` (tools called with a tool call) by content."""
    content = getattr(output, "content", output)
    return to_json(content)
