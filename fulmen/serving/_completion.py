"""A generation as the pieces of one chat completion choice: text, token ids, logprobs.

:func:`pieces` is shared by the streaming and the non-streaming response, so the two carry
the same tokens and the same text. Each generated token yields one :class:`Piece` with the
text it released (possibly ''); the last piece has no token, the held-back text if any, and
the finish reason. A stop string ends generation with finish reason ``"stop"`` (see
:mod:`fulmen.serving._text` for what the text holds then).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from fulmen.serving._text import TextStream, decode

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from fulmen.serving._generation import FinishReason, Generation, TokenStep

__all__ = ["Piece", "Whole", "pieces", "whole"]


@dataclass(frozen=True, slots=True)
class Piece:
    """Text released by one token (``step`` set), or the end of the choice (``finish_reason``)."""

    text: str
    step: TokenStep | None = None
    finish_reason: FinishReason | None = None


def pieces(generation: Generation, stop: Sequence[str] = ()) -> Iterator[Piece]:
    """Run ``generation`` to its end (eos, ``max_tokens`` or a stop string)."""
    tokenizer = generation.tokenizer
    text = TextStream(lambda ids: decode(tokenizer, ids, skip_special_tokens=True), stop)
    for step in generation:
        yield Piece(text.push(step.token_id), step)
        if text.stopped:
            yield Piece("", finish_reason="stop")
            return
    yield Piece(text.flush(), finish_reason=generation.finish_reason or "length")


@dataclass(frozen=True, slots=True)
class Whole:
    """A generation run to its end: the choice's text, its sampled tokens, why it ended."""

    text: str
    steps: list[TokenStep]
    finish_reason: FinishReason


def whole(generation: Generation, stop: Sequence[str] = ()) -> Whole:
    """All of :func:`pieces`, gathered: the non-streaming response of either endpoint."""
    texts: list[str] = []
    steps: list[TokenStep] = []
    finish: FinishReason = "length"
    for piece in pieces(generation, stop):
        texts.append(piece.text)
        if piece.step is not None:
            steps.append(piece.step)
        if piece.finish_reason is not None:
            finish = piece.finish_reason
    return Whole("".join(texts), steps, finish)
