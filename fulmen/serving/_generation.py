"""One request's token-by-token generation on a model a :class:`PolicyServer` holds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from fulmen.serving._sampling import SamplingParams, TokenLogprobs, choose_token, token_logprobs

if TYPE_CHECKING:
    from collections.abc import Generator, Iterator
    from types import TracebackType

    from transformers import Cache, PreTrainedTokenizerBase

    from fulmen.serving._policy import PolicyServer
    from fulmen.serving._served_models import Variant

__all__ = ["FinishReason", "Generation", "TokenStep"]

FinishReason = Literal["stop", "length"]


@dataclass(frozen=True, slots=True)
class TokenStep:
    """One generated token and the raw model's logprobs at its position."""

    token_id: int
    logprobs: TokenLogprobs


class Generation:
    """One request's generation: iterate it once for its :class:`TokenStep`; close it (or use
    it as a context manager) to release the model, also when stopping early.

    Iteration ends after an eos token (``finish_reason`` ``"stop"``; the eos token is the
    last step) or after ``max_tokens`` tokens (``"length"``).
    """

    def __init__(
        self,
        server: PolicyServer,
        variant: Variant,
        prompt_token_ids: list[int],
        params: SamplingParams,
        max_tokens: int,
    ) -> None:
        self.prompt_token_ids = prompt_token_ids
        self.params = params
        self.max_tokens = max_tokens
        self.finish_reason: FinishReason | None = None
        self._server = server
        self._variant = variant
        self._steps: Generator[TokenStep] | None = None
        self._closed = False

    @property
    def model(self) -> str:
        """The request name of the model generating."""
        return self._variant.info.name

    @property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        """The tokenizer of the model generating."""
        return self._variant.tokenizer

    def __iter__(self) -> Iterator[TokenStep]:
        if self._steps is None:
            self._steps = self._run()
        return self._steps

    def close(self) -> None:
        """Stop generating and release the model; idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._steps is not None:
                self._steps.close()
        finally:
            self._server._release(self._variant)

    def __enter__(self) -> Generation:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _run(self) -> Generator[TokenStep]:
        import torch

        if self._closed:
            return
        generator = torch.Generator()
        if self.params.seed is None:
            generator.seed()
        else:
            generator.manual_seed(self.params.seed)
        cache: Cache | None = None
        new_tokens = self.prompt_token_ids  # the prompt, then one token per step
        for _ in range(self.max_tokens):
            logits, cache = self._server._forward(self._variant, new_tokens, cache)
            with torch.inference_mode():
                token = choose_token(logits, self.params, generator)
                logprobs = token_logprobs(logits, token, self.params.top_logprobs)
            yield TokenStep(token, logprobs)
            if token in self._variant.eos_token_ids:
                self.finish_reason = "stop"
                return
            new_tokens = [token]
        self.finish_reason = "length"
