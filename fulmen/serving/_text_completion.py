"""The answer to ``POST /v1/completions``, whole or as server-sent events, built in a worker
thread from a generation's pieces (the same pieces as a chat completion's, so the two carry
the same tokens and text).

As vLLM: ``return_token_ids`` puts ``prompt_token_ids`` on the choice (of the first chunk
when streaming) and ``token_ids`` on every choice; ``logprobs`` is the legacy object (see
:class:`fulmen.serving._responses.TextLogprobs`).
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import TYPE_CHECKING

from fulmen.serving._completion import pieces, whole
from fulmen.serving._errors import ServingError
from fulmen.serving._requests import CompletionRequest
from fulmen.serving._responses import (
    SSE_DONE,
    TextChoice,
    TextCompletion,
    error_body,
    sse,
    text_logprobs,
    usage,
)

if TYPE_CHECKING:
    from collections.abc import Generator

    from fulmen.serving._generation import FinishReason, Generation, TokenStep

__all__ = ["TextCompletionResponse"]

logger = logging.getLogger(__name__)


class TextCompletionResponse:
    """One request's response; ``whole`` or ``chunks``, once, closing the generation."""

    def __init__(self, request: CompletionRequest, generation: Generation) -> None:
        self._request = request
        self._generation = generation
        self._id = f"cmpl-{uuid.uuid4().hex}"
        self._created = int(time.time())

    def whole(self) -> TextCompletion:
        """Generate to the end; the ``text_completion`` object."""
        try:
            done = whole(self._generation, self._request.stops)
        finally:
            self._generation.close()
        choice = self._choice(done.text, done.steps, done.finish_reason, offset=0, first=True)
        response = self._object([choice])
        response["usage"] = usage(len(self._generation.prompt_token_ids), len(done.steps))
        return response

    def chunks(self) -> Generator[bytes]:
        """The server-sent events of a streamed response, ``data: [DONE]`` last. Errors after
        the first byte become an error event (the status line is gone by then)."""
        options = self._request.stream_options
        include_usage = options is not None and options.include_usage
        completion_tokens = 0
        offset = 0
        first = True
        try:
            for piece in pieces(self._generation, self._request.stops):
                steps = [] if piece.step is None else [piece.step]
                completion_tokens += len(steps)
                if piece.text or steps or piece.finish_reason is not None:
                    choice = self._choice(
                        piece.text, steps, piece.finish_reason, offset=offset, first=first
                    )
                    yield sse(self._chunk(choice, include_usage))
                    first = False
                    offset += len(piece.text)
            if include_usage:
                last = self._object([])
                last["usage"] = usage(len(self._generation.prompt_token_ids), completion_tokens)
                yield sse(last)
        except ServingError as exc:
            yield sse(error_body(exc.message, exc.error_type, param=exc.param, code=exc.code))
        except Exception:
            logger.exception("streaming a text completion failed")
            yield sse(error_body("internal server error", "internal_error"))
        finally:
            self._generation.close()
        yield SSE_DONE

    def _choice(
        self,
        text: str,
        steps: list[TokenStep],
        finish_reason: FinishReason | None,
        *,
        offset: int,
        first: bool,
    ) -> TextChoice:
        request, generation = self._request, self._generation
        logprobs = None
        if request.logprobs is not None:
            logprobs = text_logprobs(generation.tokenizer, steps, offset)
        choice: TextChoice = {
            "index": 0,
            "text": text,
            "logprobs": logprobs,
            "finish_reason": finish_reason,
        }
        if request.return_token_ids:
            choice["token_ids"] = [step.token_id for step in steps]
            if first:
                choice["prompt_token_ids"] = generation.prompt_token_ids
        return choice

    def _chunk(self, choice: TextChoice, include_usage: bool) -> TextCompletion:
        chunk = self._object([choice])
        if include_usage:
            chunk["usage"] = None
        return chunk

    def _object(self, choices: list[TextChoice]) -> TextCompletion:
        return {
            "id": self._id,
            "object": "text_completion",
            "created": self._created,
            "model": self._generation.model,
            "system_fingerprint": None,
            "choices": choices,
        }
