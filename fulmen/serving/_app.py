"""The HTTP API of a :class:`PolicyServer`: OpenAI's chat completions, vLLM's runtime LoRA API.

Routes (every error is OpenAI's ``{"error": {message, type, param, code}}`` with its status):

* ``GET /v1/models``: the base model, then loaded adapters (``parent`` = the base) and
  full-weight models.
* ``POST /v1/chat/completions``: see :class:`fulmen.serving._requests.ChatCompletionRequest`;
  JSON or server-sent events (``stream``).
* ``POST /v1/completions``: text completions, see
  :class:`fulmen.serving._requests.CompletionRequest`; JSON or server-sent events.
* ``POST /v1/load_lora_adapter`` ``{lora_name, lora_path}`` and
  ``POST /v1/unload_lora_adapter`` ``{lora_name}``: as vLLM (plain-text success messages).
* ``POST /v1/load_model`` ``{model_name, model_path}`` and ``POST /v1/unload_model``
  ``{model_name}``: Fulmen's extension for full-weight versions.
* ``GET /health``: 200 once the server runs.

With API keys (``create_app(server, keys=...)``), every route but ``GET /health`` answers 401
and OpenAI's ``invalid_api_key`` error without ``Authorization: Bearer <key>``. Loads from
paths outside the server's model roots are answered 403 (``PathNotAllowedError``).

Blocking work (generation steps, tokenization, loading weights) runs in worker threads;
the event loop only moves bytes, so loading a model does not stall in-flight streams.
"""

from __future__ import annotations

import functools
import logging
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from fulmen.auth import ApiKeys, RequireApiKey
from fulmen.serving._completion import pieces, whole
from fulmen.serving._errors import ServingError
from fulmen.serving._requests import (
    ChatCompletionRequest,
    CompletionRequest,
    LoadLoraAdapterRequest,
    LoadModelRequest,
    UnloadLoraAdapterRequest,
    UnloadModelRequest,
    parse,
)
from fulmen.serving._responses import (
    SSE_DONE,
    ChatCompletion,
    ChatCompletionChunk,
    Choice,
    ChoiceLogprobs,
    ChunkChoice,
    Delta,
    ModelList,
    error_body,
    logprobs_content,
    model_card,
    sse,
    usage,
)
from fulmen.serving._text_completion import TextCompletionResponse

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Generator

    from starlette.requests import Request

    from fulmen.serving._generation import FinishReason, Generation, TokenStep
    from fulmen.serving._policy import PolicyServer

__all__ = ["create_app"]

logger = logging.getLogger(__name__)


def create_app(server: PolicyServer, *, keys: ApiKeys | None = None) -> Starlette:
    """A Starlette app serving ``server`` (run it with uvicorn, or :func:`serve`); with
    ``keys`` that require one, every route but ``GET /health`` needs a key."""
    api = _Api(server)
    routes = [
        Route("/health", api.health, methods=["GET"]),
        Route("/v1/models", api.models, methods=["GET"]),
        Route("/v1/chat/completions", api.chat_completions, methods=["POST"]),
        Route("/v1/completions", api.completions, methods=["POST"]),
        Route("/v1/load_lora_adapter", api.load_lora_adapter, methods=["POST"]),
        Route("/v1/unload_lora_adapter", api.unload_lora_adapter, methods=["POST"]),
        Route("/v1/load_model", api.load_model, methods=["POST"]),
        Route("/v1/unload_model", api.unload_model, methods=["POST"]),
    ]
    middleware: list[Middleware] = []
    if keys is not None and keys.required:
        middleware.append(Middleware(RequireApiKey, keys=keys, open_paths={"/health"}))
    return Starlette(
        routes=routes, middleware=middleware, exception_handlers={HTTPException: _http_error}
    )


def _openai_errors(
    endpoint: Callable[[_Api, Request], Awaitable[Response]],
) -> Callable[[_Api, Request], Awaitable[Response]]:
    """Answer :class:`ServingError` with its OpenAI error body, anything else with a 500."""

    @functools.wraps(endpoint)
    async def wrapper(api: _Api, request: Request) -> Response:
        try:
            return await endpoint(api, request)
        except ServingError as exc:
            return _error_response(exc)
        except Exception:
            logger.exception("%s %s failed", request.method, request.url.path)
            body = error_body("internal server error", "internal_error")
            return JSONResponse(body, status_code=500)

    return wrapper


def _error_response(exc: ServingError) -> JSONResponse:
    body = error_body(exc.message, exc.error_type, param=exc.param, code=exc.code)
    return JSONResponse(body, status_code=exc.status)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    error_type = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
    message = f"{exc.detail}: {request.method} {request.url.path}"
    return JSONResponse(error_body(message, error_type), status_code=exc.status_code)


class _Api:
    def __init__(self, server: PolicyServer) -> None:
        self._server = server

    async def health(self, request: Request) -> Response:
        return Response(status_code=200)

    @_openai_errors
    async def models(self, request: Request) -> Response:
        cards = [model_card(info) for info in self._server.models()]
        listing: ModelList = {"object": "list", "data": cards}
        return JSONResponse(listing)

    @_openai_errors
    async def load_lora_adapter(self, request: Request) -> Response:
        body = parse(LoadLoraAdapterRequest, await request.body())
        load = functools.partial(self._server.load_adapter, body.lora_name, Path(body.lora_path))
        await anyio.to_thread.run_sync(load)
        return PlainTextResponse(f"Success: LoRA adapter '{body.lora_name}' added successfully.")

    @_openai_errors
    async def unload_lora_adapter(self, request: Request) -> Response:
        body = parse(UnloadLoraAdapterRequest, await request.body())
        unload = functools.partial(self._server.unload, body.lora_name, kind="adapter")
        await anyio.to_thread.run_sync(unload)
        return PlainTextResponse(f"Success: LoRA adapter '{body.lora_name}' removed successfully.")

    @_openai_errors
    async def load_model(self, request: Request) -> Response:
        body = parse(LoadModelRequest, await request.body())
        load = functools.partial(self._server.load_weights, body.model_name, Path(body.model_path))
        await anyio.to_thread.run_sync(load)
        return PlainTextResponse(f"Success: model '{body.model_name}' loaded successfully.")

    @_openai_errors
    async def unload_model(self, request: Request) -> Response:
        body = parse(UnloadModelRequest, await request.body())
        unload = functools.partial(self._server.unload, body.model_name, kind="weights")
        await anyio.to_thread.run_sync(unload)
        return PlainTextResponse(f"Success: model '{body.model_name}' unloaded successfully.")

    @_openai_errors
    async def chat_completions(self, request: Request) -> Response:
        chat = parse(ChatCompletionRequest, await request.body())
        chat.check()
        start = functools.partial(
            self._server.start,
            chat.model,
            chat.template_messages(),
            chat.sampling(),
            tools=chat.template_tools(),
        )
        generation = await anyio.to_thread.run_sync(start)
        completion = _Completion(chat, generation)
        if chat.stream:
            return StreamingResponse(
                _in_threads(completion.chunks()), media_type="text/event-stream"
            )
        try:
            result = await anyio.to_thread.run_sync(completion.whole)
        finally:
            generation.close()
        return JSONResponse(result)

    @_openai_errors
    async def completions(self, request: Request) -> Response:
        body = parse(CompletionRequest, await request.body())
        body.check()
        start = functools.partial(self._server.start_text, body.model, body.prompt, body.sampling())
        generation = await anyio.to_thread.run_sync(start)
        response = TextCompletionResponse(body, generation)
        if body.stream:
            return StreamingResponse(_in_threads(response.chunks()), media_type="text/event-stream")
        return JSONResponse(await anyio.to_thread.run_sync(response.whole))


class _Completion:
    """One request's response, built in a worker thread from the generation's pieces."""

    def __init__(self, chat: ChatCompletionRequest, generation: Generation) -> None:
        self._chat = chat
        self._generation = generation
        self._id = f"chatcmpl-{uuid.uuid4().hex}"
        self._created = int(time.time())

    def whole(self) -> ChatCompletion:
        """Generate to the end; the ``chat.completion`` object."""
        chat, generation = self._chat, self._generation
        done = whole(generation, chat.stops)
        steps = done.steps
        choice: Choice = {
            "index": 0,
            "message": {"role": "assistant", "content": done.text, "refusal": None},
            "logprobs": self._logprobs(steps),
            "finish_reason": done.finish_reason,
        }
        if chat.return_token_ids:
            choice["token_ids"] = [step.token_id for step in steps]
        response: ChatCompletion = {
            "id": self._id,
            "object": "chat.completion",
            "created": self._created,
            "model": generation.model,
            "system_fingerprint": None,
            "choices": [choice],
            "usage": usage(len(generation.prompt_token_ids), len(steps)),
        }
        if chat.return_token_ids:
            response["prompt_token_ids"] = generation.prompt_token_ids
        return response

    def chunks(self) -> Generator[bytes]:
        """The server-sent events of a streamed response, ``data: [DONE]`` last. Errors after
        the first byte become an error event (the status line is gone by then)."""
        chat, generation = self._chat, self._generation
        include_usage = chat.stream_options is not None and chat.stream_options.include_usage
        completion_tokens = 0
        try:
            first = self._chunk({"role": "assistant", "content": ""}, [], None)
            if chat.return_token_ids:
                first["prompt_token_ids"] = generation.prompt_token_ids
            yield sse(first)
            for piece in pieces(generation, chat.stops):
                steps = [] if piece.step is None else [piece.step]
                completion_tokens += len(steps)
                if piece.text or steps:
                    yield sse(self._chunk({"content": piece.text}, steps, None))
                if piece.finish_reason is not None:
                    yield sse(self._chunk({}, [], piece.finish_reason))
            if include_usage:
                last = self._chunk({}, [], None)
                last["choices"] = []
                last["usage"] = usage(len(generation.prompt_token_ids), completion_tokens)
                yield sse(last)
        except ServingError as exc:
            yield sse(error_body(exc.message, exc.error_type, param=exc.param, code=exc.code))
        except Exception:
            logger.exception("streaming a chat completion failed")
            yield sse(error_body("internal server error", "internal_error"))
        finally:
            generation.close()
        yield SSE_DONE

    def _chunk(
        self, delta: Delta, steps: list[TokenStep], finish_reason: FinishReason | None
    ) -> ChatCompletionChunk:
        choice: ChunkChoice = {
            "index": 0,
            "delta": delta,
            "logprobs": self._logprobs(steps) if steps else None,
            "finish_reason": finish_reason,
        }
        if self._chat.return_token_ids:
            choice["token_ids"] = [step.token_id for step in steps]
        chunk: ChatCompletionChunk = {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._generation.model,
            "system_fingerprint": None,
            "choices": [choice],
        }
        if self._chat.stream_options is not None and self._chat.stream_options.include_usage:
            chunk["usage"] = None
        return chunk

    def _logprobs(self, steps: list[TokenStep]) -> ChoiceLogprobs | None:
        if not self._chat.logprobs:
            return None
        return {"content": logprobs_content(self._generation.tokenizer, steps)}


async def _in_threads(chunks: Generator[bytes]) -> AsyncIterator[bytes]:
    """Iterate a blocking generator one item per worker-thread call; close it in a thread
    too when the client goes away (after the step in progress: threads are not cancelled)."""
    try:
        while (chunk := await anyio.to_thread.run_sync(_next, chunks)) is not None:
            yield chunk
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(chunks.close)


def _next(chunks: Generator[bytes]) -> bytes | None:
    return next(chunks, None)
