"""What the gateway changes in a request before forwarding it, and how it undoes that in
the response, so that the agent sees what the upstream would have answered it directly.

Changes, each only when configured and only when the agent did not ask for it itself:

* `model` → the model version's `model_name` (a vLLM LoRA adapter name, say);
* the chat's leading system message → the prompt version's template (inserted if none);
* `logprobs` (chat: `true`; text completions: `0`, the sampled token's logprob only),
  vLLM's `return_token_ids: true`, and for streams `stream_options.include_usage: true`.

What the last three added to a response is removed again by `strip`: token-id fields go,
`logprobs` becomes `null` (what servers answer when none were asked for), `usage` goes
from stream chunks and the usage-only last chunk is dropped. The first two are the point
of following versions and are not undone.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fulmen.producers._llm_calls import Operation
from fulmen.producers._resources import Resources
from fulmen.producers.gateway._settings import GatewaySettings

Json = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Added:
    """Which response fields exist only because the gateway asked for them."""

    logprobs: bool = False
    token_ids: bool = False
    usage: bool = False

    @property
    def any(self) -> bool:
        return self.logprobs or self.token_ids or self.usage


@dataclass(frozen=True, slots=True)
class Rewritten:
    """The body to forward, whether it differs from the agent's, and what it added."""

    body: Json
    changed: bool
    added: Added


def rewrite(
    body: Mapping[str, Any],
    operation: Operation,
    resources: Resources,
    settings: GatewaySettings,
    *,
    capture: bool = True,
) -> Rewritten:
    """The request to send upstream for the agent's `body` (which is not modified). Without
    `capture` (a call that is not recorded) nothing is asked for on the agent's behalf."""
    out = dict(body)
    if settings.model_from_version and resources.model_name:
        out["model"] = resources.model_name
    template_name = settings.system_prompt_template
    if operation == "chat" and template_name is not None:
        template = resources.prompt_templates.get(template_name)
        if template is not None and isinstance(out.get("messages"), list):
            out["messages"] = _with_system(out["messages"], template)
    logprobs = capture and settings.request_logprobs and not out.get("logprobs")
    if logprobs:
        out["logprobs"] = True if operation == "chat" else 0
    token_ids = capture and settings.request_token_ids and not out.get("return_token_ids")
    if token_ids:
        out["return_token_ids"] = True
    usage = False
    if capture and settings.request_usage and out.get("stream") is True:
        options = out.get("stream_options")
        options = dict(options) if isinstance(options, Mapping) else {}
        if not options.get("include_usage"):
            out["stream_options"] = {**options, "include_usage": True}
            usage = True
    added = Added(logprobs=logprobs, token_ids=token_ids, usage=usage)
    return Rewritten(out, out != body, added)


def strip(data: Json, added: Added, *, chunk: bool) -> Json | None:
    """`data` (a completion, or a stream chunk when `chunk`) without what `added` asked
    for; a new object, `data` is not modified. None: a chunk to drop (the usage-only chunk
    that only the gateway asked for)."""
    if not added.any:
        return data
    out = dict(data)
    if added.usage and chunk:
        had_usage = out.pop("usage", None) is not None
        if had_usage and not out.get("choices"):
            return None
    if added.token_ids:
        out.pop("prompt_token_ids", None)
    choices = out.get("choices")
    if isinstance(choices, list) and (added.token_ids or added.logprobs):
        out["choices"] = [_strip_choice(choice, added) for choice in choices]
    return out


def _strip_choice(choice: Any, added: Added) -> Any:
    if not isinstance(choice, dict):
        return choice
    choice = dict(choice)
    if added.token_ids:
        choice.pop("token_ids", None)
        choice.pop("prompt_token_ids", None)
    if added.logprobs and "logprobs" in choice:
        choice["logprobs"] = None
    return choice


def _with_system(messages: list[Any], template: str) -> list[Any]:
    first = messages[0] if messages else None
    if isinstance(first, Mapping) and first.get("role") in ("system", "developer"):
        return [{**first, "content": template}, *messages[1:]]
    return [{"role": "system", "content": template}, *messages]


def dumps_like(data: Json, original: bytes) -> bytes:
    """`data` as JSON in the style of `original` (the upstream's bytes it came from):
    compact or with spaces after `,` and `:`, non-ASCII kept as is."""
    spaced = b'": ' in original
    separators = (", ", ": ") if spaced else (",", ":")
    return json.dumps(data, ensure_ascii=False, separators=separators).encode()
