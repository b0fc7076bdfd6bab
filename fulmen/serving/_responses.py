"""The wire format's responses: ``TypedDict`` shapes, built here, with exactly the fields
OpenAI's API has (plus vLLM's ``prompt_token_ids``/``token_ids`` when ``return_token_ids``
asks for them), and server-sent events.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Literal, NotRequired, TypedDict

from fulmen.serving._text import decode

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from fulmen.serving._generation import FinishReason, TokenStep
    from fulmen.serving._served_models import ModelInfo


class TopLogprob(TypedDict):
    token: str
    logprob: float
    bytes: list[int]


class TokenLogprob(TypedDict):
    token: str
    logprob: float
    bytes: list[int]
    top_logprobs: list[TopLogprob]


class ChoiceLogprobs(TypedDict):
    content: list[TokenLogprob]


class Message(TypedDict):
    role: Literal["assistant"]
    content: str
    refusal: None


class Choice(TypedDict):
    index: int
    message: Message
    logprobs: ChoiceLogprobs | None
    finish_reason: FinishReason
    token_ids: NotRequired[list[int]]


class Usage(TypedDict):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletion(TypedDict):
    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    system_fingerprint: None
    choices: list[Choice]
    usage: Usage
    prompt_token_ids: NotRequired[list[int]]


class Delta(TypedDict, total=False):
    role: Literal["assistant"]
    content: str


class ChunkChoice(TypedDict):
    index: int
    delta: Delta
    logprobs: ChoiceLogprobs | None
    finish_reason: FinishReason | None
    token_ids: NotRequired[list[int]]


class ChatCompletionChunk(TypedDict):
    id: str
    object: Literal["chat.completion.chunk"]
    created: int
    model: str
    system_fingerprint: None
    choices: list[ChunkChoice]
    usage: NotRequired[Usage | None]
    prompt_token_ids: NotRequired[list[int]]


class TextLogprobs(TypedDict):
    """The legacy completions API's logprobs: per token its text, its logprob, the
    alternatives asked for (token text → logprob) and where its text starts."""

    tokens: list[str]
    token_logprobs: list[float]
    top_logprobs: list[dict[str, float]]
    text_offset: list[int]


class TextChoice(TypedDict):
    index: int
    text: str
    logprobs: TextLogprobs | None
    finish_reason: FinishReason | None
    token_ids: NotRequired[list[int]]
    prompt_token_ids: NotRequired[list[int]]


class TextCompletion(TypedDict):
    """A ``text_completion`` object: the whole answer, or one stream chunk (then ``usage`` is
    absent, or None but in the usage-only last chunk, as for chat)."""

    id: str
    object: Literal["text_completion"]
    created: int
    model: str
    system_fingerprint: None
    choices: list[TextChoice]
    usage: NotRequired[Usage | None]


class ModelCard(TypedDict):
    id: str
    object: Literal["model"]
    created: int
    owned_by: Literal["fulmen"]
    root: str
    parent: str | None
    max_model_len: int


class ModelList(TypedDict):
    object: Literal["list"]
    data: list[ModelCard]


class ErrorDetail(TypedDict):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorBody(TypedDict):
    error: ErrorDetail


def usage(prompt_tokens: int, completion_tokens: int) -> Usage:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def logprobs_content(
    tokenizer: PreTrainedTokenizerBase, steps: Sequence[TokenStep]
) -> list[TokenLogprob]:
    """OpenAI's per-token logprobs. A token's text is its own decoding (special tokens
    included), ``bytes`` that text's UTF-8, as vLLM reports them."""

    def text(token_id: int) -> str:
        return decode(tokenizer, [token_id], skip_special_tokens=False)

    def entry(token_id: int, logprob: float) -> TopLogprob:
        token = text(token_id)
        return {"token": token, "logprob": logprob, "bytes": list(token.encode())}

    content: list[TokenLogprob] = []
    for step in steps:
        chosen = entry(step.token_id, step.logprobs.logprob)
        top = [entry(token_id, logprob) for token_id, logprob in step.logprobs.top]
        content.append({**chosen, "top_logprobs": top})
    return content


def text_logprobs(
    tokenizer: PreTrainedTokenizerBase, steps: Sequence[TokenStep], offset: int
) -> TextLogprobs:
    """The legacy logprobs of ``steps``, whose text starts at ``offset`` of the choice's
    text; token texts are their own decodings (special tokens included), as vLLM's."""

    def text(token_id: int) -> str:
        return decode(tokenizer, [token_id], skip_special_tokens=False)

    tokens = [text(step.token_id) for step in steps]
    offsets: list[int] = []
    for token in tokens:
        offsets.append(offset)
        offset += len(token)
    return {
        "tokens": tokens,
        "token_logprobs": [step.logprobs.logprob for step in steps],
        "top_logprobs": [
            {text(token_id): logprob for token_id, logprob in step.logprobs.top} for step in steps
        ],
        "text_offset": offsets,
    }


def model_card(info: ModelInfo) -> ModelCard:
    return {
        "id": info.name,
        "object": "model",
        "created": info.created,
        "owned_by": "fulmen",
        "root": str(info.path),
        "parent": info.parent,
        "max_model_len": info.max_model_len,
    }


def error_body(
    message: str, error_type: str, *, param: str | None = None, code: str | None = None
) -> ErrorBody:
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


def sse(payload: Mapping[str, object]) -> bytes:
    """One server-sent event carrying ``payload`` as JSON."""
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n".encode()


SSE_DONE = b"data: [DONE]\n\n"
