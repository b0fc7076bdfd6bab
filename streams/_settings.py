"""The stream worker's own settings (`FULMEN_WORKER_*`); Kafka, topics and the store come
from `FulmenSettings` like every other Fulmen process."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from fulmen._net import is_loopback
from fulmen.streams._assembly import AssemblyPolicy
from fulmen.streams._credit_loading import CreditLoadError, load_credit_assigner


class WorkerSettings(BaseSettings):
    """How the worker batches, assembles and reports."""

    model_config = SettingsConfigDict(env_prefix="FULMEN_WORKER_", extra="ignore")

    app_id: str = Field(
        default="fulmen-streams",
        description="Consumer group, and the prefix of the buffer table's changelog topic.",
    )
    partitions: int = Field(default=4, ge=1, description="Partitions of the input topics.")
    batch_max: int = Field(default=5_000, ge=1, description="Messages per store write.")
    batch_within_s: float = Field(default=0.2, gt=0, description="Longest wait to fill one.")
    tick_s: float = Field(default=0.25, gt=0, description="How often due episodes are looked for.")
    fetch_max_wait_s: float = Field(
        default=0.1,
        gt=0,
        le=30,
        description="Longest the broker holds a fetch that found no new message (see "
        "`streams/_batch_consumer.py`: a fetch held for idle partitions delays the busy ones).",
    )
    grace_s: float = Field(default=5.0, ge=0)
    idle_timeout_s: float = Field(default=300.0, gt=0)
    retention_s: float = Field(default=3_600.0, gt=0)
    credit: str = Field(
        default="final",
        description="`final`, `discounted`, `per_call`, or `module:attribute` naming your own "
        "`CreditAssigner` (streams/_credit_loading.py).",
    )
    gamma: float = Field(default=0.95, gt=0, le=1, description="For `discounted` credit.")
    max_event_bytes: int = Field(
        default=1_000_000,
        ge=1,
        description="A larger message is a dead letter (`too_large`); the SDK's limit too.",
    )
    max_rollout_bytes: int = Field(
        default=16 << 20,
        ge=1,
        description="Events a rollout may buffer (all attempts); more → `rollout_too_large`.",
    )
    session_timeout_s: float = Field(
        default=10.0,
        ge=6,  # the broker's default `group.min.session.timeout.ms`
        description="A worker silent this long (killed, hung) loses its partitions to the "
        "others; it heartbeats every third of it.",
    )
    instance_id: str | None = Field(
        default=None,
        description="Static group membership (Kafka's `group.instance.id`): a worker restarted "
        "with the same id takes its partitions back at once, without a rebalance, and one "
        "that stops keeps them for `session_timeout_s`. Unique per live worker (e.g. the pod "
        "name); unset: dynamic membership.",
    )
    retry_initial_s: float = Field(default=0.25, gt=0)
    retry_max_s: float = Field(default=10.0, gt=0)
    web_host: str = Field(
        default="127.0.0.1",
        description="Address the web server (`/metrics`, Faust's `/router/`, `/table/`) binds. "
        "A non-loopback address needs `web_token`.",
    )
    web_port: int = Field(default=6066, ge=0, le=65535)
    web_token: SecretStr | None = Field(
        default=None,
        description="Bearer token every web request must carry (`Authorization: Bearer "
        "<token>`, else 401); required when `web_host` is not a loopback address.",
        validate_default=True,
    )
    data_dir: Path = Path(".fulmen/worker")

    @field_validator("credit")
    @classmethod
    def _credit_loads(cls, credit: str) -> str:
        try:
            load_credit_assigner(credit)  # fail at start-up, not at the first episode
        except CreditLoadError as exc:
            raise ValueError(str(exc)) from exc
        return credit

    @property
    def changelog_max_bytes(self) -> int:
        """Largest record of the buffer table's changelog: a whole rollout, as the format before
        segments wrote it (segments are at most 1 MiB, or one event)."""
        return self.max_rollout_bytes + (1 << 20)

    def policy(self) -> AssemblyPolicy:
        credit = load_credit_assigner(self.credit, gamma=self.gamma)
        return AssemblyPolicy(
            grace_s=self.grace_s,
            idle_timeout_s=self.idle_timeout_s,
            retention_s=self.retention_s,
            credit=credit,
        )

    @field_validator("web_token")
    @classmethod
    def _web_is_guarded(cls, token: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        host = info.data.get("web_host", "127.0.0.1")
        if token is None and not is_loopback(host):
            raise ValueError(
                f"web_host {host!r} is not a loopback address: set FULMEN_WORKER_WEB_TOKEN (a "
                "bearer token for /metrics and Faust's pages), or bind 127.0.0.1"
            )
        return token
