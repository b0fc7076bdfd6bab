"""The one place a trainer talks to an OpenAI-compatible chat endpoint (the `openai`
client): vLLM, the policy server, a hosted API. Every failure of the endpoint surfaces as
an `EndpointError` naming the endpoint, never as the client's own exception."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from fulmen.errors import FulmenError

if TYPE_CHECKING:
    import openai


class EndpointError(FulmenError):
    """An OpenAI-compatible endpoint failed, refused a request, or returned no choice."""


class ChatEndpoint:
    """Single chat completions against `base_url` with `model`; `complete` returns the text
    of the first choice ("" when the model produced nothing)."""

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: str,
        timeout_s: float = 60.0,
        max_retries: int = 2,
    ) -> None:
        if not model:
            raise EndpointError(f"no model name given for the endpoint at {base_url}")
        try:
            import openai
        except ImportError as exc:  # an optional dependency: `pip install fulmen[openai]`
            raise EndpointError("APO needs the openai client: install fulmen[openai]") from exc
        self.base_url = base_url
        self.model = model
        self._client: openai.OpenAI = openai.OpenAI(
            base_url=base_url, api_key=api_key, timeout=timeout_s, max_retries=max_retries
        )
        self._errors: tuple[type[Exception], ...] = (openai.OpenAIError,)

    def complete(
        self,
        messages: Sequence[dict[str, str]],
        *,
        max_tokens: int,
        temperature: float,
        seed: int | None,
    ) -> str:
        try:
            reply = self._client.chat.completions.create(
                model=self.model,
                messages=list(messages),  # type: ignore[arg-type]  # role/content dicts are ChatCompletionMessageParam
                max_tokens=max_tokens,
                temperature=temperature,
                seed=seed,
            )
        except self._errors as exc:
            raise EndpointError(f"{self.model} at {self.base_url} failed: {exc}") from exc
        if not reply.choices:
            raise EndpointError(f"{self.model} at {self.base_url} returned no choice")
        return reply.choices[0].message.content or ""
