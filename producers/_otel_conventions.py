"""Other instrumentations' attribute conventions, translated into the GenAI semantic
conventions (`gen_ai.*`) that Fulmen's OpenTelemetry span processor reads.

- OpenInference (Arize Phoenix's instrumentors): `openinference.span.kind` `LLM` / `TOOL`,
  `llm.model_name`, `llm.provider`, `llm.token_count.prompt` / `completion`,
  `llm.input_messages.<i>.message.role` / `content` (and `llm.output_messages…`),
  `llm.invocation_parameters` (JSON), `tool.name`, `tool_call.id`, `input.value`,
  `output.value`.
- OpenLLMetry (Traceloop): `llm.request.type` `chat` / `completion`, `gen_ai.prompt.<i>.role`
  / `content`, `gen_ai.completion.<i>.role` / `content` / `finish_reason`,
  `gen_ai.usage.prompt_tokens` / `completion_tokens`; tools as `traceloop.span.kind` `tool`
  with `traceloop.entity.name` / `input` / `output`.

A span that already names `gen_ai.operation.name` is taken as it is.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

_INDEXED = re.compile(r"^(?P<prefix>.+?)\.(?P<index>\d+)\.(?P<field>.+)$")


def as_genai(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """`attributes` with the GenAI keys another convention implies added (never replaced)."""
    if "gen_ai.operation.name" in attributes:
        return dict(attributes)
    implied = _openinference(attributes) or _openllmetry(attributes)
    return implied | dict(attributes)


def _openinference(attributes: Mapping[str, Any]) -> dict[str, Any]:
    kind = str(attributes.get("openinference.span.kind", "")).upper()
    if kind == "LLM":
        parameters = _json_object(attributes.get("llm.invocation_parameters"))
        return _without_none(
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": attributes.get("llm.provider")
                or attributes.get("llm.system"),
                "gen_ai.request.model": attributes.get("llm.model_name"),
                "gen_ai.request.temperature": parameters.get("temperature"),
                "gen_ai.request.max_tokens": parameters.get("max_tokens"),
                "gen_ai.usage.input_tokens": attributes.get("llm.token_count.prompt"),
                "gen_ai.usage.output_tokens": attributes.get("llm.token_count.completion"),
                "gen_ai.input.messages": _messages(attributes, "llm.input_messages", "message."),
                "gen_ai.output.messages": _messages(attributes, "llm.output_messages", "message."),
            }
        )
    if kind == "TOOL":
        return _without_none(
            {
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": attributes.get("tool.name"),
                "gen_ai.tool.call.id": attributes.get("tool_call.id"),
                "gen_ai.tool.call.arguments": attributes.get("input.value"),
                "gen_ai.tool.call.result": _as_json(attributes.get("output.value")),
            }
        )
    return {}


def _openllmetry(attributes: Mapping[str, Any]) -> dict[str, Any]:
    request_type = attributes.get("llm.request.type")
    if request_type in ("chat", "completion"):
        finish = [
            str(value)
            for key, value in sorted(attributes.items())
            if _field_of(key, "gen_ai.completion") == "finish_reason"
        ]
        return _without_none(
            {
                "gen_ai.operation.name": "chat" if request_type == "chat" else "text_completion",
                "gen_ai.usage.input_tokens": attributes.get("gen_ai.usage.prompt_tokens"),
                "gen_ai.usage.output_tokens": attributes.get("gen_ai.usage.completion_tokens"),
                "gen_ai.input.messages": _messages(attributes, "gen_ai.prompt", ""),
                "gen_ai.output.messages": _messages(attributes, "gen_ai.completion", ""),
                "gen_ai.response.finish_reasons": finish or None,
            }
        )
    if attributes.get("traceloop.span.kind") == "tool":
        return _without_none(
            {
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": attributes.get("traceloop.entity.name"),
                "gen_ai.tool.call.arguments": attributes.get("traceloop.entity.input"),
                "gen_ai.tool.call.result": _as_json(attributes.get("traceloop.entity.output")),
            }
        )
    return {}


def _field_of(key: str, prefix: str) -> str | None:
    match = _INDEXED.match(key)
    return match.group("field") if match and match.group("prefix") == prefix else None


def _messages(attributes: Mapping[str, Any], prefix: str, infix: str) -> str | None:
    """Flattened `<prefix>.<i>.<infix>role` / `content` attributes as a JSON message list."""
    by_index: dict[int, dict[str, Any]] = {}
    for key, value in attributes.items():
        match = _INDEXED.match(key)
        if not match or match.group("prefix") != prefix:
            continue
        field = match.group("field")
        if not field.startswith(infix):
            continue
        field = field.removeprefix(infix)
        if field in ("role", "content"):
            by_index.setdefault(int(match.group("index")), {})[field] = value
    if not by_index:
        return None
    return json.dumps([by_index[i] for i in sorted(by_index)], ensure_ascii=False)


def _json_object(value: Any) -> dict[str, Any]:
    if not isinstance(value, str):
        return {}
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _as_json(value: Any) -> str | None:
    """A result attribute as JSON text: kept when it already is JSON, else quoted."""
    if value is None:
        return None
    text = str(value)
    try:
        json.loads(text)
    except json.JSONDecodeError:
        return json.dumps(text, ensure_ascii=False)
    return text


def _without_none(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}
