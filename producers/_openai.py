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

from fulmen.producers._context import ActiveRollout, new_span_id
from fulmen.producers._global import current_producer, get_producer
from fulmen.producers._llm_calls import (
    ChatChunkAccumulator,
    from_chat_completion,
    request_only,
    span_name,
)
from fulmen.producers._resources import Resources
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

    def __init__(
        self,
        active: ActiveRollout,
        parent: str | None,
        request: dict[str, Any],
        requested: Resources,
    ) -> None:
        self.active = active
        self.parent = parent
        self.request = request
        self.requested = requested  # the versions in force when the call was made
        self.start_ns = time.time_ns()
        self.done = False
        self.chunks = ChatChunkAccumulator()

    def end_stream(self, error: BaseException | None = None) -> None:
        """Finish with what the stream's chunks said so far."""
        self.finish(self.chunks.llm_call(self.request), error)

    def record(self, completion: object) -> None:
        """Finish with what a non-streamed call returned."""
        if isinstance(completion, ChatCompletion):
            self.finish(from_chat_completion(self.request, completion))
        else:
            self.finish(None)

    def finish(self, llm: LlmCall | None, error: BaseException | None = None) -> None:
        if self.done:
            return
        self.done = True
        response_model = llm.response_model if llm is not None else None
        served = get_producer().served(self.requested, response_model)
        if response_model:
            self.active.served.append(served.model_version)
        emit_span(
            self.active,
            name=span_name("chat", self.request),
            kind="CLIENT",
            span_id=new_span_id(),
            parent_span_id=self.parent,
            start_ns=self.start_ns,
            end_ns=time.time_ns(),
            error=None if error is None else f"{type(error).__name__}: {error}",
            llm=llm or request_only(self.request),
            resources=served,
        )


def _is_raw(response: object, call: _Call) -> bool:
    """`with_raw_response` / `with_streaming_response` results of non-streamed calls. Their
    `parse()` caches, so parsing here costs the agent nothing when it parses too."""
    raw = (LegacyAPIResponse, APIResponse, AsyncAPIResponse)
    return isinstance(response, raw) and not call.request.get("stream")


def _prepare(kwargs: dict[str, Any]) -> _Call | None:
    """Before a call: with `openai_model_from_version` (the default), ask for the model the
    version in force names; inside a rollout, the call to record."""
    active, parent = parent_of_new_span()
    producer = get_producer() if active is not None else current_producer()
    if producer is None:
        return None
    requested = producer.versions.current
    if producer.settings.producer.openai_model_from_version and requested.model_name:
        kwargs["model"] = requested.model_name
    if active is None:
        return None
    if producer.settings.producer.request_token_ids:
        kwargs.setdefault("logprobs", True)
        kwargs["extra_body"] = {"return_token_ids": True, **(kwargs.get("extra_body") or {})}
    return _Call(active, parent, dict(kwargs), requested)


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
