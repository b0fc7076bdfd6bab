"""Generated token ids to text, one token at a time: incremental detokenization and stop strings.

Contract of :class:`TextStream`:

* The texts returned by :meth:`TextStream.push` and then :meth:`TextStream.flush`, joined,
  are ``decode(all pushed ids)`` (for tokenizers whose decoding of a sequence continues
  the decoding of its prefix, as byte-level BPE does), unless a stop string was found.
* Text is held back while it ends in an incomplete character (``U+FFFD``) or in what could
  be the beginning of a stop string; it is released as soon as it cannot be.
* When a stop string appears, :attr:`TextStream.stopped` turns true and the text ends right
  before the stop string's first occurrence (the stop string itself is not returned, as in
  OpenAI's API). The caller stops generating; the token ids that produced the stop string
  remain part of the completion's token ids.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from transformers import PreTrainedTokenizerBase

__all__ = ["TextStream", "decode"]

_INCOMPLETE = "\ufffd"


def decode(
    tokenizer: PreTrainedTokenizerBase, token_ids: Sequence[int], *, skip_special_tokens: bool
) -> str:
    """The text of one sequence of token ids (``decode`` is annotated for batches too)."""
    text = tokenizer.decode(list(token_ids), skip_special_tokens=skip_special_tokens)
    assert isinstance(text, str)
    return text


class TextStream:
    """Turns the token ids of one completion into text deltas.

    ``decode`` maps token ids to text (special tokens skipped); ``stop`` are the stop strings.
    The decoding window follows vLLM's incremental detokenizer: each step decodes from a
    "prefix" offset a few tokens back, so that tokenizers whose text depends on the
    previous token (leading spaces) still decode right, in time independent of the length.
    """

    def __init__(self, decode: Callable[[Sequence[int]], str], stop: Sequence[str] = ()) -> None:
        if any(not s for s in stop):
            raise ValueError("stop strings must not be empty")
        self._decode = decode
        self._stop = tuple(stop)
        self._ids: list[int] = []
        self._prefix_offset = 0  # decoding starts here, for context
        self._read_offset = 0  # text of ids before this has been decoded into _text
        self._text = ""  # decoded so far (possibly ahead of what was released)
        self._released = 0  # characters of _text handed out
        self.stopped = False

    def push(self, token_id: int) -> str:
        """Add one generated token; return the text that became final with it (may be '')."""
        if self.stopped:
            raise RuntimeError("push after a stop string was found")
        self._ids.append(token_id)
        prefix = self._decode(self._ids[self._prefix_offset : self._read_offset])
        full = self._decode(self._ids[self._prefix_offset :])
        if len(full) <= len(prefix) or full.endswith(_INCOMPLETE):
            return ""  # nothing new yet, or a character split across tokens
        self._text += full[len(prefix) :]
        self._prefix_offset, self._read_offset = self._read_offset, len(self._ids)
        return self._release(final=False)

    def flush(self) -> str:
        """At the end of generation: return whatever is still held back."""
        if self.stopped:
            return ""
        prefix = self._decode(self._ids[self._prefix_offset : self._read_offset])
        full = self._decode(self._ids[self._prefix_offset :])
        self._text += full[len(prefix) :]
        self._prefix_offset = self._read_offset = len(self._ids)
        return self._release(final=True)

    def _release(self, *, final: bool) -> str:
        start = self._released
        hits = [i for i in (self._text.find(s, start) for s in self._stop) if i >= 0]
        if hits:
            end = min(hits)
            self._text = self._text[:end]
            self.stopped = True
        elif final:
            end = len(self._text)
        else:
            end = len(self._text) - self._stop_prefix_length(start)
        self._released = end
        return self._text[start:end]

    def _stop_prefix_length(self, start: int) -> int:
        """Length of the longest tail of the unreleased text that begins some stop string."""
        tail = self._text[start:]
        longest = 0
        for stop in self._stop:
            for size in range(min(len(stop) - 1, len(tail)), longest, -1):
                if tail.endswith(stop[:size]):
                    longest = size
                    break
        return longest
