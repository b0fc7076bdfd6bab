"""One call through the gateway, recorded as a GenAI span of its rollout.

The span is built by the SDK's shared `LlmCall` builders from what the upstream answered
(before the gateway stripped what it asked for on the agent's behalf), stamped with the
versions snapshot the request was made under, and emitted through the producer (its
bounded queue, spill and no-loss guarantees). It is emitted once, when the call ends:
response read, stream finished, upstream failed or the agent went away.
"""

from __future__ import annotations

import json
import time
from typing import Any, TypeVar

from openai import BaseModel as OpenAIModel
from openai.types import Completion
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from pydantic import ValidationError

from fulmen.producers._context import ActiveRollout, new_span_id
from fulmen.producers._llm_calls import (
    ChatChunkAccumulator,
    Operation,
    TextChunkAccumulator,
    from_chat_completion,
    from_text_completion,
    request_only,
    span_name,
)
from fulmen.producers._producer import Producer
from fulmen.producers._resources import Resources, VersionState
from fulmen.producers._spans import emit_span
from fulmen.schemas import Attributes, LlmCall

Json = dict[str, Any]
ModelT = TypeVar("ModelT", bound=OpenAIModel)


class CallRecord:
    """Accumulates one call; `finish` emits its span (once; later calls do nothing)."""

    def __init__(
        self,
        producer: Producer,
        active: ActiveRollout,
        resources: Resources,
        operation: Operation,
        request: Json,
        versions: VersionState,
    ) -> None:
        self._producer = producer
        self._active = active
        self._resources = resources
        self._versions = versions
        self._operation = operation
        self._request = request
        self._start_ns = time.time_ns()
        self._first_chunk_ns: int | None = None
        self._status: int | None = None
        self._llm: LlmCall | None = None
        self._chunks: ChatChunkAccumulator | TextChunkAccumulator | None = None
        self._done = False
        self._span_id = new_span_id()

    @property
    def span_id(self) -> str:
        return self._span_id

    def status(self, code: int) -> None:
        """The upstream's HTTP status."""
        self._status = code

    def completion(self, data: Json) -> None:
        """A non-streamed response body (as the upstream sent it)."""
        if self._operation == "chat":
            self._llm = from_chat_completion(self._request, _model(ChatCompletion, data))
        else:
            self._llm = from_text_completion(self._request, _model(Completion, data))

    def chunk(self, data: Json) -> None:
        """One stream chunk (as the upstream sent it)."""
        if self._first_chunk_ns is None:
            self._first_chunk_ns = time.time_ns()
        if self._operation == "chat":
            if not isinstance(self._chunks, ChatChunkAccumulator):
                self._chunks = ChatChunkAccumulator()
            self._chunks.add(_model(ChatCompletionChunk, data))
        else:
            if not isinstance(self._chunks, TextChunkAccumulator):
                self._chunks = TextChunkAccumulator()
            self._chunks.add(_model(Completion, data))

    def finish(self, error: str | None = None) -> None:
        """Emit the span: what was answered so far, with `error` as its status message."""
        if self._done:
            return
        self._done = True
        llm = self._llm
        if llm is None and self._chunks is not None:
            llm = self._chunks.llm_call(self._request)
        doubles: dict[str, float] = {}
        if self._first_chunk_ns is not None:
            ttft_s = (self._first_chunk_ns - self._start_ns) / 1e9
            doubles["gen_ai.server.time_to_first_token"] = ttft_s
        attributes = Attributes(
            strings={"fulmen.capture": "gateway"},
            ints={} if self._status is None else {"http.response.status_code": self._status},
            doubles=doubles,
        )
        emit_span(
            self._active,
            name=span_name(self._operation, self._request),
            kind="CLIENT",
            span_id=self._span_id,
            parent_span_id=self._active.root_span_id,
            start_ns=self._start_ns,
            end_ns=time.time_ns(),
            error=error,
            attributes=attributes,
            llm=llm or request_only(self._request, self._operation),
            producer=self._producer,
            resources=self._producer.served(
                self._resources,
                llm.response_model if llm is not None else None,
                versions=self._versions,
            ),
        )


def _model(model: type[ModelT], data: Json) -> ModelT:
    """`data` as the `openai` model it is: validated (fast, pydantic-core), else constructed
    without validation as the `openai` client itself does (servers add and bend fields)."""
    try:
        return model.model_validate(data)
    except ValidationError:
        return model.construct(**data)


def error_message(status: int, body: bytes) -> str:
    """An upstream error as a span status message: the status and OpenAI's error message
    when the body has one, else the start of the body."""
    try:
        parsed = json.loads(body)
        message = parsed["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = body[:500].decode(errors="replace")
    return f"upstream {status}: {message}"
