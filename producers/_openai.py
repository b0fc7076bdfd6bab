"""Automatic capture of the OpenAI Python client's chat completions, sync and async,
streaming included, as GenAI `chat` spans of the rollout in progress.

Only the calls made inside a rollout are recorded; the agent gets the client's own return
values (streams are wrapped, chunks pass through untouched). Token ids and logprobs are
recorded when the server returns them: `logprobs` from the standard API, token ids from
vLLM's `return_token_ids` (top-level `prompt_token_ids`, per-choice `token_ids`).
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from openai import APIResponse, AsyncAPIResponse, AsyncStream, Stream
from openai._legacy_response import LegacyAPIResponse  # what `with_raw_response` returns
from openai.resources.chat.completions import AsyncCompletions, Completions
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from fulmen.producers._context import ActiveRollout, new_span_id, to_json
from fulmen.producers._global import current_producer, get_producer
from fulmen.producers._spans import emit_span, parent_of_new_span
from fulmen.schemas import LlmCall

_ORIGINALS: dict[str, Callable[..., Any]] = {}


def instrument_openai() -> None:
    """Patch `chat.completions.create` of every sync and async OpenAI client (idempotent)."""
    if _ORIGINALS:
        return
    _ORIGINALS["sync"] = Completions.create
    _ORIGINALS["async"] = AsyncCompletions.create
    Completions.create = _capture_sync(Completions.create)  # type: ignore[method-assign]
    AsyncCompletions.create = _capture_async(AsyncCompletions.create)  # type: ignore[method-assign]


def uninstrument_openai() -> None:
    """Undo `instrument_openai`."""
    if _ORIGINALS:
        Completions.create = _ORIGINALS.pop("sync")  # type: ignore[method-assign]
        AsyncCompletions.create = _ORIGINALS.pop("async")  # type: ignore[method-assign]


class _Call:
    """One captured call: request, timing, and the response as it accumulates."""

    def __init__(self, active: ActiveRollout, parent: str | None, request: dict[str, Any]) -> None:
        self.active = active
        self.parent = parent
        self.request = request
        self.start_ns = time.time_ns()
        self.done = False
        self.chunks = _ChunkAccumulator()

    def end_stream(self, error: BaseException | None = None) -> None:
        """Finish with what the stream's chunks said so far."""
        self.finish(self.chunks.llm_call(self.request), error)

    def record(self, completion: object) -> None:
        """Finish with what a non-streamed call returned."""
        if isinstance(completion, ChatCompletion):
            self.finish(_from_completion(self.request, completion))
        else:
            self.finish(None)

    def finish(self, llm: LlmCall | None, error: BaseException | None = None) -> None:
        if self.done:
            return
        self.done = True
        model = str(self.request.get("model", ""))
        emit_span(
            self.active,
            name=f"chat {model}",
            kind="CLIENT",
            span_id=new_span_id(),
            parent_span_id=self.parent,
            start_ns=self.start_ns,
            end_ns=time.time_ns(),
            error=None if error is None else f"{type(error).__name__}: {error}",
            llm=llm or _request_only(self.request),
        )


def _is_raw(response: object, call: _Call) -> bool:
    """`with_raw_response` / `with_streaming_response` results of non-streamed calls. Their
    `parse()` caches, so parsing here costs the agent nothing when it parses too."""
    raw = (LegacyAPIResponse, APIResponse, AsyncAPIResponse)
    return isinstance(response, raw) and not call.request.get("stream")


def _follow_model_version(kwargs: dict[str, Any]) -> None:
    """With `openai_model_from_version`, ask for the model version in force (when it names a
    model): the agent follows model versions without a code change."""
    producer = current_producer()
    if producer is not None and producer.settings.producer.openai_model_from_version:
        model_name = producer.versions.current.model_name
        if model_name:
            kwargs["model"] = model_name


def _prepare(kwargs: dict[str, Any]) -> _Call | None:
    _follow_model_version(kwargs)
    active, parent = parent_of_new_span()
    if active is None:
        return None
    if get_producer().settings.producer.request_token_ids:
        kwargs.setdefault("logprobs", True)
        kwargs["extra_body"] = {"return_token_ids": True, **(kwargs.get("extra_body") or {})}
    return _Call(active, parent, dict(kwargs))


def _capture_sync(create: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(create)
    def create_and_capture(self: Completions, *args: Any, **kwargs: Any) -> Any:
        call = _prepare(kwargs)
        if call is None:
            return create(self, *args, **kwargs)
        try:
            response = create(self, *args, **kwargs)
        except BaseException as exc:
            call.finish(None, exc)
            raise
        if isinstance(response, Stream):
            return _CapturedStream(response, call)
        try:
            completion = response.parse() if _is_raw(response, call) else response
        except Exception as exc:
            call.finish(None, exc)
            return response
        call.record(completion)
        return response

    return create_and_capture


def _capture_async(create: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(create)
    async def create_and_capture(self: AsyncCompletions, *args: Any, **kwargs: Any) -> Any:
        call = _prepare(kwargs)
        if call is None:
            return await create(self, *args, **kwargs)
        try:
            response = await create(self, *args, **kwargs)
        except BaseException as exc:
            call.finish(None, exc)
            raise
        if isinstance(response, AsyncStream):
            return _CapturedAsyncStream(response, call)
        try:
            completion = response.parse() if _is_raw(response, call) else response
            if inspect.isawaitable(completion):
                completion = await completion
        except Exception as exc:
            call.finish(None, exc)
            return response
        call.record(completion)
        return response

    return create_and_capture


class _CapturedStream:
    """Passes a `Stream`'s chunks through and records the call when it ends."""

    def __init__(self, inner: Stream[ChatCompletionChunk], call: _Call) -> None:
        self._inner = inner
        self._call = call

    def __iter__(self) -> Iterator[ChatCompletionChunk]:
        try:
            for chunk in self._inner:
                self._call.chunks.add(chunk)
                yield chunk
        except GeneratorExit:  # the agent stopped reading: not an error
            self._call.end_stream()
            raise
        except BaseException as exc:
            self._call.end_stream(exc)
            raise
        self._call.end_stream()

    def __next__(self) -> ChatCompletionChunk:
        try:
            chunk = next(self._inner)
        except StopIteration:
            self._call.end_stream()
            raise
        self._call.chunks.add(chunk)
        return chunk

    def __enter__(self) -> _CapturedStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._inner.close()
        self._call.end_stream()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _CapturedAsyncStream:
    """Passes an `AsyncStream`'s chunks through and records the call when it ends."""

    def __init__(self, inner: AsyncStream[ChatCompletionChunk], call: _Call) -> None:
        self._inner = inner
        self._call = call

    async def __aiter__(self) -> AsyncIterator[ChatCompletionChunk]:
        try:
            async for chunk in self._inner:
                self._call.chunks.add(chunk)
                yield chunk
        except GeneratorExit:  # the agent stopped reading: not an error
            self._call.end_stream()
            raise
        except BaseException as exc:
            self._call.end_stream(exc)
            raise
        self._call.end_stream()

    async def __anext__(self) -> ChatCompletionChunk:
        try:
            chunk = await self._inner.__anext__()
        except StopAsyncIteration:
            self._call.end_stream()
            raise
        self._call.chunks.add(chunk)
        return chunk

    async def __aenter__(self) -> _CapturedAsyncStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._inner.close()
        self._call.end_stream()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _ChunkAccumulator:
    """Rebuilds the first choice's message, tokens and logprobs from stream chunks."""

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
        self.prompt_token_ids.extend(_extra_ints(chunk, "prompt_token_ids"))
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
            self.token_ids.extend(_extra_ints(choice, "token_ids"))
            self.finish_reason = choice.finish_reason or self.finish_reason

    def llm_call(self, request: dict[str, Any]) -> LlmCall | None:
        if not self.seen:
            return None
        message: dict[str, Any] = {"role": "assistant", "content": "".join(self.content)}
        if self.tool_calls:
            message["tool_calls"] = [self.tool_calls[i] for i in sorted(self.tool_calls)]
        return _llm_call(
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


def _from_completion(request: dict[str, Any], completion: ChatCompletion) -> LlmCall:
    first = completion.choices[0] if completion.choices else None
    logprobs = first.logprobs.content if first and first.logprobs and first.logprobs.content else []
    usage = completion.usage
    return _llm_call(
        request,
        streamed=False,
        response_model=completion.model,
        response_id=completion.id,
        usage=None if usage is None else (usage.prompt_tokens, usage.completion_tokens),
        finish_reasons=[choice.finish_reason for choice in completion.choices],
        output_messages=[choice.message for choice in completion.choices],
        prompt_token_ids=_extra_ints(completion, "prompt_token_ids"),
        response_token_ids=_extra_ints(first, "token_ids") if first else [],
        response_logprobs=[token.logprob for token in logprobs],
    )


def _llm_call(
    request: dict[str, Any],
    *,
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
    base = _request_only(request)
    return base.model_copy(
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


def _request_only(request: dict[str, Any]) -> LlmCall:
    max_tokens = request.get("max_completion_tokens") or request.get("max_tokens")
    temperature = request.get("temperature")
    return LlmCall(
        request_model=str(request.get("model", "")),
        temperature=temperature if isinstance(temperature, (int, float)) else None,
        max_tokens=max_tokens if isinstance(max_tokens, int) else None,
        input_messages=to_json(request.get("messages", [])),
        tool_definitions=to_json(request.get("tools") or []),
    )


def _extra_ints(model: Any, field: str) -> list[int]:
    """A list of ints that an OpenAI-compatible server added beyond the OpenAI schema."""
    value = getattr(model, field, None)
    if value is None and getattr(model, "model_extra", None):
        value = model.model_extra.get(field)
    return [int(item) for item in value] if isinstance(value, list) else []
