"""The gateway's own settings (`FULMEN_GATEWAY_*`); Kafka, topics, the producer and its
spill come from `FulmenSettings` like every other Fulmen process."""

from __future__ import annotations

from typing import Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from fulmen.auth import ApiKeySettings


class GatewaySettings(ApiKeySettings):
    """Where the gateway listens, what it forwards to, and the bounds it keeps.

    Agents send one of `api_keys` (or of the keys in `api_key_file`) as `Authorization:
    Bearer <key>`; without any key the gateway listens on loopback only. The upstream gets
    the gateway's own `upstream_api_key`, never the agent's key unless `forward_client_key`.
    """

    model_config = SettingsConfigDict(env_prefix="FULMEN_GATEWAY_", extra="ignore")

    upstream_url: str = Field(
        default="http://127.0.0.1:8000/v1",
        description="The OpenAI base URL of the model server (vLLM, the policy server).",
    )
    upstream_api_key: SecretStr | None = Field(
        default=None,
        description="Sent to the upstream as `Authorization: Bearer <key>` (the policy "
        "server's or vLLM's `--api-key`, or an OpenAI key); None sends none.",
    )
    forward_client_key: bool = Field(
        default=False,
        description="Forward the agent's own `Authorization` header to the upstream instead "
        "(each agent with its own upstream key); excludes `upstream_api_key`.",
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8100, ge=0, le=65535)
    max_in_flight: int = Field(
        default=256,
        ge=1,
        description="Calls forwarded at once; beyond it the gateway answers 503 + Retry-After.",
    )
    retry_after_s: int = Field(default=1, ge=0, description="Retry-After of those 503s.")
    max_request_bytes: int = Field(
        default=8 << 20, ge=1, description="Larger request bodies are refused with 413."
    )
    upstream_connections: int = Field(
        default=256, ge=1, description="Connections to the upstream at most (pooled)."
    )
    upstream_connect_timeout_s: float = Field(default=5.0, gt=0)
    upstream_read_timeout_s: float = Field(
        default=600.0, gt=0, description="Longest wait for the next bytes of a response."
    )
    request_logprobs: bool = Field(
        default=True,
        description="Ask the upstream for logprobs the agent did not ask for (stripped from "
        "what the agent receives).",
    )
    request_token_ids: bool = Field(
        default=True,
        description="Ask the upstream for vLLM's `return_token_ids` (stripped likewise). Turn "
        "off for servers that refuse unknown fields (OpenAI's own API).",
    )
    request_usage: bool = Field(
        default=True,
        description="Ask streams for `stream_options.include_usage` (stripped likewise).",
    )
    model_from_version: bool = Field(
        default=True,
        description="Request the model version's `model_name` (a vLLM LoRA adapter name) "
        "instead of the agent's `model`, once a model version is in force.",
    )
    system_prompt_template: str | None = Field(
        default=None,
        description="A prompt template name (e.g. `system`): when the prompt version in force "
        "has it, it replaces the chat's leading system message (or is inserted as one).",
    )
    max_open_rollouts: int = Field(
        default=100_000,
        ge=1,
        description="Rollouts started through the gateway whose start time it remembers.",
    )
    max_agents: int = Field(
        default=1_024, ge=1, description="Agent names whose versions are cached at once."
    )

    @model_validator(mode="after")
    def _one_upstream_key(self) -> Self:
        if self.forward_client_key and self.upstream_api_key is not None:
            raise ValueError(
                "set FULMEN_GATEWAY_UPSTREAM_API_KEY or FULMEN_GATEWAY_FORWARD_CLIENT_KEY, not both"
            )
        return self
