"""What one LLM call said, as the GenAI `LlmCall` record of its span: request, response
messages, usage, finish reasons, and the token ids and logprobs RL needs.

Shared by every capture path (the OpenAI client patch, the gateway): they differ in where
the request and response come from, never in what a span records. Responses are the
`openai` package's models; token ids are vLLM's `return_token_ids` extension (top-level
`prompt_token_ids`, per-choice `token_ids`, or per-choice `prompt_token_ids` on text
completions), read from the models' extra fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from openai.types import Completion
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from fulmen.producers._context import to_json
from fulmen.schemas import LlmCall

Operation = Literal["chat", "text_completion"]
"""GenAI `gen_ai.operation.name` of the two OpenAI inference APIs."""


def span_name(operation: Operation, request: Mapping[str, Any]) -> str:
    """GenAI span name: `{operation} {request model}`."""
    return f"{operation} {request.get('model', '')}"


def request_only(request: Mapping[str, Any], operation: Operation = "chat") -> LlmCall:
    """What the request alone says (a call that failed before any response)."""
    max_tokens = request.get("max_completion_tokens") or request.get("max_tokens")
    temperature = request.get("temperature")
    if operation == "chat":
        messages = request.get("messages", [])
    else:  # a text completion's prompt, as the one user message of the call
        messages = [{"role": "user", "content": request.get("prompt", "")}]
    return LlmCall(
        operation_name=operation,
        request_model=str(request.get("model", "")),
        temperature=temperature if isinstance(temperature, (int, float)) else None,
        max_tokens=max_tokens if isinstance(max_tokens, int) else None,
        input_messages=to_json(messages),
        tool_definitions=to_json(request.get("tools") or []),
    )


def llm_call(
    request: Mapping[str, Any],
    *,
    operation: Operation = "chat",
    streamed: bool,
    response_model: str | None,
    response_id: str | None,
    usage: tuple[int, int] | None,
    finish_reasons: list[str],
    output_messages: list[Any],
    prompt_token_ids: list[int],
    response_token_ids: list[int],
    response_logprobs: list[float],
) -> LlmCall:
    """The request's record completed with what the response said."""
    return request_only(request, operation).model_copy(
        update={
            "streamed": streamed,
            "response_model": response_model,
            "response_id": response_id,
            "input_tokens": None if usage is None else usage[0],
            "output_tokens": None if usage is None else usage[1],
            "finish_reasons": finish_reasons,
            "output_messages": to_json(output_messages),
            "prompt_token_ids": prompt_token_ids,
            "response_token_ids": response_token_ids,
            "response_logprobs": response_logprobs,
        }
    )


def from_chat_completion(request: Mapping[str, Any], completion: ChatCompletion) -> LlmCall:
    """A non-streamed chat completion; tokens and logprobs of the first choice."""
    first = completion.choices[0] if completion.choices else None
    logprobs = first.logprobs.content if first and first.logprobs and first.logprobs.content else []
    usage = completion.usage
    return llm_call(
        request,
        streamed=False,
        response_model=completion.model,
        response_id=completion.id,
        usage=None if usage is None else (usage.prompt_tokens, usage.completion_tokens),
        finish_reasons=[choice.finish_reason for choice in completion.choices],
        output_messages=[choice.message for choice in completion.choices],
        prompt_token_ids=extra_ints(completion, "prompt_token_ids"),
        response_token_ids=extra_ints(first, "token_ids") if first else [],
        response_logprobs=[token.logprob for token in logprobs],
    )


def from_text_completion(request: Mapping[str, Any], completion: Completion) -> LlmCall:
    """A non-streamed text completion (`/v1/completions`); tokens of the first choice."""
    first = completion.choices[0] if completion.choices else None
    usage = completion.usage
    return llm_call(
        request,
        operation="text_completion",
        streamed=False,
        response_model=completion.model,
        response_id=completion.id,
        usage=None if usage is None else (usage.prompt_tokens, usage.completion_tokens),
        finish_reasons=[choice.finish_reason for choice in completion.choices],
        output_messages=[{"role": "assistant", "content": c.text} for c in completion.choices],
        prompt_token_ids=_prompt_ids(completion, first),
        response_token_ids=extra_ints(first, "token_ids") if first else [],
        response_logprobs=_text_logprobs(first),
    )


class ChatChunkAccumulator:
    """Rebuilds the first choice's message, tokens and logprobs from chat stream chunks."""

    def __init__(self) -> None:
        self.content: list[str] = []
        self.tool_calls: dict[int, dict[str, Any]] = {}
        self.finish_reason: str | None = None
        self.model: str | None = None
        self.response_id: str | None = None
        self.usage: tuple[int, int] | None = None
        self.prompt_token_ids: list[int] = []
        self.token_ids: list[int] = []
        self.logprobs: list[float] = []
        self.seen = False

    def add(self, chunk: ChatCompletionChunk) -> None:
        self.seen = True
        self.model = chunk.model
        self.response_id = chunk.id
        self.prompt_token_ids.extend(extra_ints(chunk, "prompt_token_ids"))
        if chunk.usage is not None:
            self.usage = (chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
        for choice in chunk.choices:
            if choice.index != 0:
                continue
            delta = choice.delta
            if delta.content:
                self.content.append(delta.content)
            for call in delta.tool_calls or []:
                entry = self.tool_calls.setdefault(
                    call.index,
                    {"id": None, "type": "function", "function": {"name": "", "arguments": ""}},
                )
                entry["id"] = call.id or entry["id"]
                if call.function is not None:
                    entry["function"]["name"] += call.function.name or ""
                    entry["function"]["arguments"] += call.function.arguments or ""
            if choice.logprobs is not None and choice.logprobs.content:
                self.logprobs.extend(token.logprob for token in choice.logprobs.content)
            self.token_ids.extend(extra_ints(choice, "token_ids"))
            self.finish_reason = choice.finish_reason or self.finish_reason

    def llm_call(self, request: Mapping[str, Any]) -> LlmCall | None:
        """What the chunks said so far; None before the first chunk."""
        if not self.seen:
            return None
        message: dict[str, Any] = {"role": "assistant", "content": "".join(self.content)}
        if self.tool_calls:
            message["tool_calls"] = [self.tool_calls[i] for i in sorted(self.tool_calls)]
        return llm_call(
            request,
            streamed=True,
            response_model=self.model,
            response_id=self.response_id,
            usage=self.usage,
            finish_reasons=[self.finish_reason] if self.finish_reason else [],
            output_messages=[message],
            prompt_token_ids=self.prompt_token_ids,
            response_token_ids=self.token_ids,
            response_logprobs=self.logprobs,
        )


class TextChunkAccumulator:
    """Rebuilds the first choice's text, tokens and logprobs from text completion chunks
    (a streamed `/v1/completions`: each chunk is a `Completion` holding a piece of text)."""

    def __init__(self) -> None:
        self.text: list[str] = []
        self.finish_reason: str | None = None
        self.model: str | None = None
        self.response_id: str | None = None
        self.usage: tuple[int, int] | None = None
        self.prompt_token_ids: list[int] = []
        self.token_ids: list[int] = []
        self.logprobs: list[float] = []
        self.seen = False

    def add(self, chunk: Completion) -> None:
        self.seen = True
        self.model = chunk.model
        self.response_id = chunk.id
        if chunk.usage is not None:
            self.usage = (chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
        for choice in chunk.choices:
            if choice.index != 0:
                continue
            self.text.append(choice.text)
            self.prompt_token_ids.extend(_prompt_ids(chunk, choice))
            self.token_ids.extend(extra_ints(choice, "token_ids"))
            self.logprobs.extend(_text_logprobs(choice))
            self.finish_reason = choice.finish_reason or self.finish_reason

    def llm_call(self, request: Mapping[str, Any]) -> LlmCall | None:
        """What the chunks said so far; None before the first chunk."""
        if not self.seen:
            return None
        return llm_call(
            request,
            operation="text_completion",
            streamed=True,
            response_model=self.model,
            response_id=self.response_id,
            usage=self.usage,
            finish_reasons=[self.finish_reason] if self.finish_reason else [],
            output_messages=[{"role": "assistant", "content": "".join(self.text)}],
            prompt_token_ids=self.prompt_token_ids,
            response_token_ids=self.token_ids,
            response_logprobs=self.logprobs,
        )


def extra_ints(model: Any, field: str) -> list[int]:
    """A list of ints that an OpenAI-compatible server added beyond the OpenAI schema."""
    value = getattr(model, field, None)
    if value is None and getattr(model, "model_extra", None):
        value = model.model_extra.get(field)
    return [int(item) for item in value] if isinstance(value, list) else []


def _prompt_ids(completion: Completion, choice: Any) -> list[int]:
    """vLLM puts a text completion's prompt token ids on the choice; top level elsewhere."""
    return extra_ints(choice, "prompt_token_ids") or extra_ints(completion, "prompt_token_ids")


def _text_logprobs(choice: Any) -> list[float]:
    """The legacy logprobs object's `token_logprobs` (None entries, a prompt echo's first
    token, are left out)."""
    logprobs = getattr(choice, "logprobs", None)
    values = getattr(logprobs, "token_logprobs", None) or []
    return [float(value) for value in values if value is not None]
