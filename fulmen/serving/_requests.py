"""The wire format's requests: OpenAI's chat and text completions, vLLM's extras, vLLM's
runtime LoRA and model API, as pydantic models (unknown fields are ignored, as vLLM does).
Responses are in ``_responses.py``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from fulmen.serving._errors import InvalidRequestError
from fulmen.serving._sampling import SamplingParams

if TYPE_CHECKING:
    pass

__all__ = [
    "MAX_TOP_LOGPROBS",
    "ChatCompletionRequest",
    "CompletionRequest",
    "LoadLoraAdapterRequest",
    "LoadModelRequest",
    "UnloadLoraAdapterRequest",
    "UnloadModelRequest",
    "parse",
]

MAX_TOP_LOGPROBS = 20
"""OpenAI's (and vLLM's default) limit on ``top_logprobs``."""


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


# -- requests ---------------------------------------------------------------------------------


class TextPart(_Request):
    type: Literal["text"]
    text: str


class FunctionCall(_Request):
    name: str
    arguments: str


class ToolCall(_Request):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessage(_Request):
    """A message of the conversation. ``developer`` is OpenAI's newer name for ``system``."""

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None

    def for_template(self) -> dict[str, object]:
        """The message as Hugging Face chat templates take it (content a string)."""
        content = self.content
        if isinstance(content, list):
            content = "".join(part.text for part in content)
        message: dict[str, object] = {
            "role": "system" if self.role == "developer" else self.role,
            "content": content or "",
        }
        if self.name is not None:
            message["name"] = self.name
        if self.tool_calls:
            message["tool_calls"] = [call.model_dump() for call in self.tool_calls]
        if self.tool_call_id is not None:
            message["tool_call_id"] = self.tool_call_id
        return message


class FunctionDefinition(_Request):
    name: str
    description: str | None = None
    parameters: dict[str, object] | None = None


class Tool(_Request):
    type: Literal["function"]
    function: FunctionDefinition


class StreamOptions(_Request):
    include_usage: bool = False


def _non_empty_stops(stop: str | list[str]) -> str | list[str]:
    if not all(stop if isinstance(stop, list) else [stop]):
        raise ValueError("stop strings must not be empty")
    return stop


Stop = Annotated[str | list[str], AfterValidator(_non_empty_stops)]


class _GenerationRequest(_Request):
    """What chat and text completion requests share: sampling, stops, streaming, vLLM's
    ``return_token_ids``, and the penalties accepted only at their neutral values."""

    model: str
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(gt=0, le=1)] | None = None
    seed: int | None = None
    stop: Stop | None = None
    n: int | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    return_token_ids: bool | None = None
    # Accepted only at their neutral values, so that no request silently loses its meaning:
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    logit_bias: dict[str, float] | None = None

    @property
    def stops(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)

    def _check_n(self) -> None:
        if self.n not in (None, 1):
            raise InvalidRequestError(
                "n must be 1: this server returns one choice per request", param="n"
            )

    def _check_stream_options(self) -> None:
        if self.stream_options is not None and not self.stream:
            raise InvalidRequestError(
                "stream_options is only allowed when stream is true", param="stream_options"
            )

    def _penalties_used(self) -> dict[str, bool]:
        return {
            "frequency_penalty": self.frequency_penalty not in (None, 0),
            "presence_penalty": self.presence_penalty not in (None, 0),
            "logit_bias": bool(self.logit_bias),
        }

    @staticmethod
    def _refuse(used: dict[str, bool]) -> None:
        for param, is_used in used.items():
            if is_used:
                raise InvalidRequestError(f"{param} is not supported by this server", param=param)


class ChatCompletionRequest(_GenerationRequest):
    """``POST /v1/chat/completions``. Supported beyond ``model``/``messages``: ``max_tokens`` /
    ``max_completion_tokens`` (the latter wins), ``temperature`` (0 greedy), ``top_p``,
    ``seed``, ``stop``, ``n`` (1 only), ``logprobs``/``top_logprobs``, ``stream`` with
    ``stream_options.include_usage``, ``tools`` (rendered by the chat template; no tool-call
    parsing: calls come back as text), and vLLM's ``return_token_ids``."""

    messages: Annotated[list[ChatMessage], Field(min_length=1)]
    max_tokens: Annotated[int, Field(ge=1)] | None = None
    max_completion_tokens: Annotated[int, Field(ge=1)] | None = None
    logprobs: bool | None = None
    top_logprobs: Annotated[int, Field(ge=0, le=MAX_TOP_LOGPROBS)] | None = None
    tools: list[Tool] | None = None
    tool_choice: str | dict[str, object] | None = None
    response_format: dict[str, object] | None = None
    """Accepted only as ``{"type": "text"}``."""

    def check(self) -> None:
        """Refuse what validates as JSON but is not served here (OpenAI's 400s)."""
        self._check_n()
        if self.top_logprobs and not self.logprobs:
            raise InvalidRequestError(
                "top_logprobs requires logprobs to be true", param="top_logprobs"
            )
        self._check_stream_options()
        if self.tool_choice not in (None, "none", "auto"):
            raise InvalidRequestError(
                "tool_choice must be 'auto' or 'none': forced tool calls are not supported",
                param="tool_choice",
            )
        format_used = self.response_format not in (None, {"type": "text"})
        self._refuse({**self._penalties_used(), "response_format": format_used})

    def sampling(self) -> SamplingParams:
        return SamplingParams(
            max_tokens=self.max_completion_tokens or self.max_tokens,
            temperature=1.0 if self.temperature is None else self.temperature,
            top_p=1.0 if self.top_p is None else self.top_p,
            seed=self.seed,
            top_logprobs=(self.top_logprobs or 0) if self.logprobs else 0,
        )

    def template_messages(self) -> list[dict[str, object]]:
        return [message.for_template() for message in self.messages]

    def template_tools(self) -> list[dict[str, object]] | None:
        if not self.tools or self.tool_choice == "none":
            return None
        return [tool.model_dump(exclude_none=True) for tool in self.tools]


class CompletionRequest(_GenerationRequest):
    """``POST /v1/completions``: a text completion of ``prompt`` as it is (no chat template;
    the tokenizer's special tokens are added, as vLLM does). Supported beyond
    ``model``/``prompt``: ``max_tokens`` (OpenAI's default 16), ``temperature`` (0 greedy),
    ``top_p``, ``seed``, ``stop``, ``n`` (1 only), ``logprobs`` (the number of alternatives
    per token, the sampled token's logprob always), ``stream`` with
    ``stream_options.include_usage``, and vLLM's ``return_token_ids``."""

    prompt: Annotated[str, Field(min_length=1)]
    max_tokens: Annotated[int, Field(ge=1)] | None = 16
    logprobs: Annotated[int, Field(ge=0, le=MAX_TOP_LOGPROBS)] | None = None
    # Accepted only at their neutral values, so that no request silently loses its meaning:
    echo: bool | None = None
    suffix: str | None = None
    best_of: int | None = None

    def check(self) -> None:
        """Refuse what validates as JSON but is not served here (OpenAI's 400s)."""
        self._check_n()
        self._check_stream_options()
        self._refuse(
            {"echo": bool(self.echo), "suffix": bool(self.suffix),
             "best_of": self.best_of not in (None, 1), **self._penalties_used()}
        )  # fmt: skip

    def sampling(self) -> SamplingParams:
        return SamplingParams(
            max_tokens=self.max_tokens,
            temperature=1.0 if self.temperature is None else self.temperature,
            top_p=1.0 if self.top_p is None else self.top_p,
            seed=self.seed,
            top_logprobs=self.logprobs or 0,
        )


class LoadLoraAdapterRequest(_Request):
    """vLLM's ``POST /v1/load_lora_adapter``."""

    lora_name: Annotated[str, Field(min_length=1)]
    lora_path: Annotated[str, Field(min_length=1)]


class UnloadLoraAdapterRequest(_Request):
    """vLLM's ``POST /v1/unload_lora_adapter`` (``lora_int_id`` is not supported)."""

    lora_name: Annotated[str, Field(min_length=1)]


class LoadModelRequest(_Request):
    """Fulmen's ``POST /v1/load_model``: full weights (a full fine-tune) under a name."""

    model_name: Annotated[str, Field(min_length=1)]
    model_path: Annotated[str, Field(min_length=1)]


class UnloadModelRequest(_Request):
    """Fulmen's ``POST /v1/unload_model``."""

    model_name: Annotated[str, Field(min_length=1)]


RequestT = TypeVar("RequestT", bound=BaseModel)


def parse(model: type[RequestT], body: bytes) -> RequestT:
    """Validate a JSON body; every failure is an :class:`InvalidRequestError` (HTTP 400)."""
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        if error["type"] == "json_invalid":
            raise InvalidRequestError(f"the body is not valid JSON: {error['msg']}") from exc
        raise InvalidRequestError(f"{where}: {error['msg']}", param=where or None) from exc
