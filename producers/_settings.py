"""Producer configuration: environment (`FULMEN_…`, nested with `__`) and an optional TOML file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from fulmen.kafka import KafkaSettings, TopicSettings
from fulmen.store import StoreSettings

TransportKind = Literal["kafka", "inprocess"]
Compression = Literal["none", "gzip", "snappy", "lz4", "zstd"]
Durability = Literal["memory", "spill_on_outage", "write_ahead"]
"""Where an event waits for the broker (docs/producers.md#durability):

* `memory`: in librdkafka's buffer; the spill takes only overflow and failed deliveries.
* `spill_on_outage`: as `memory` until no delivery has progressed for
  `outage_spill_after_s`; then what librdkafka holds is moved to the spill, and new events go
  to the spill until it is drained.
* `write_ahead`: every event is appended to the spill (and synced to disk) before it is
  produced; a segment is deleted once all of it was acknowledged.
"""

# librdkafka's `message.max.bytes` is `max_event_bytes` plus this much for the key (the
# rollout id) and the record's framing, so that the SDK's limit, not librdkafka's, refuses.
# 1_000_000 + 16 KiB is still below the broker's default `max.message.bytes` (1,048,588).
RECORD_OVERHEAD_BYTES = 16_384


class RegistrySettings(BaseModel):
    """A Confluent-compatible schema registry; when set, events use the Confluent wire format."""

    url: str
    basic_auth_user_info: SecretStr | None = None


class ProducerSettings(BaseModel):
    """How the SDK buffers, batches and spills. Sizes bound the SDK's memory and disk."""

    agent_name: str = ""
    model_version: str = ""
    resources_version: str = ""
    queue_max_events: int = Field(default=100_000, ge=1)
    buffer_max_messages: int = Field(default=200_000, ge=1, description="librdkafka queue bound")
    buffer_max_kbytes: int = Field(default=65_536, ge=1, description="librdkafka queue bound")
    linger_ms: int = Field(default=20, ge=0)
    batch_size_bytes: int = Field(default=1_048_576, ge=1)
    compression: Compression = "lz4"
    message_timeout_ms: int = Field(default=300_000, ge=1)
    spill_dir: Path = Path(".fulmen/spill")
    spill_max_bytes: int = Field(default=1 << 30, ge=1)
    max_event_bytes: int = Field(
        default=1_000_000,
        ge=1,
        description="Largest encoded event; larger ones are refused (counted in `oversize`).",
    )
    durability: Durability = "spill_on_outage"
    outage_spill_after_s: float = Field(
        default=5.0,
        gt=0,
        description="`spill_on_outage`: how long without delivery progress counts as an outage.",
    )
    flush_timeout_s: float = Field(default=10.0, ge=0)
    redact: str | None = Field(
        default=None,
        description="A redactor (`module:attribute`, a `str -> str` callable) run over every "
        "event's free text before it is encoded; `fulmen.producers.redaction:redact_pii` is "
        "the built-in one. Token ids of LLM calls whose text changed are dropped, and an event "
        "the redactor fails on is lost, counted in `failed` (docs/producers.md#redaction).",
    )
    capture_openai: bool = True
    request_token_ids: bool = Field(
        default=False,
        description="Ask servers for logprobs and token ids (vLLM's return_token_ids).",
    )
    follow_versions: bool = Field(
        default=True,
        description="Follow the control topic and hot-swap the versions that target this agent.",
    )
    follow_startup_timeout_s: float = Field(
        default=5.0,
        ge=0,
        description="How long `configure` waits to learn the versions in force before going on.",
    )
    await_replicas: int = Field(
        default=0,
        ge=0,
        description="Apply a model version that names a model only once this many replicas of "
        "`serving_pool` acknowledged it loaded on the control topic (0: at once). Set it to "
        "the number of model-server replicas the agent's requests reach.",
    )
    serving_pool: str = Field(
        default="default",
        min_length=1,
        description="The pool of model-server replicas this agent's requests reach.",
    )
    routing_key: Literal["user_id", "task_id", "rollout_id"] = Field(
        default="user_id",
        description="What assigns a rollout to a canary's arm, by a stable hash: the rollout's "
        "user id, else its task id, else its rollout id (`task_id`: task, else rollout id).",
    )
    openai_model_from_version: bool = Field(
        default=True,
        description="Send captured OpenAI calls to the model version's `model_name` (if any): "
        "an agent that follows versions also uses them. False keeps the agent's own `model`; "
        "its calls are then stamped with the version that answered them, whatever is in force.",
    )

    def librdkafka_options(self) -> dict[str, str]:
        return {
            "queue.buffering.max.messages": str(self.buffer_max_messages),
            "queue.buffering.max.kbytes": str(self.buffer_max_kbytes),
            "linger.ms": str(self.linger_ms),
            "batch.size": str(self.batch_size_bytes),
            "compression.type": self.compression,
            "message.timeout.ms": str(self.message_timeout_ms),
            "message.max.bytes": str(self.max_event_bytes + RECORD_OVERHEAD_BYTES),
        }


class FulmenSettings(BaseSettings):
    """Everything an instrumented process reads at start-up.

    Sources, strongest first: arguments, `FULMEN_*` environment variables (nested fields
    with `__`, e.g. `FULMEN_KAFKA__BOOTSTRAP_SERVERS`), the TOML file named by
    `FULMEN_CONFIG_FILE` (default `fulmen.toml`), defaults.
    """

    model_config = SettingsConfigDict(
        env_prefix="FULMEN_", env_nested_delimiter="__", toml_file="fulmen.toml", extra="ignore"
    )

    transport: TransportKind = "inprocess"
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    topics: TopicSettings = Field(default_factory=TopicSettings)
    schema_registry: RegistrySettings | None = None
    producer: ProducerSettings = Field(default_factory=ProducerSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = os.environ.get("FULMEN_CONFIG_FILE", "fulmen.toml")
        toml = TomlConfigSettingsSource(settings_cls, toml_file=toml_file)
        return (init_settings, env_settings, toml, file_secret_settings)
