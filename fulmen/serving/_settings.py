"""The policy server's settings (`FULMEN_SERVE_*`): its API keys, where it may load
adapters and models from, and how its version follower acknowledges and unloads versions."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from fulmen.auth import ApiKeySettings

__all__ = ["DEFAULT_MODEL_ROOTS", "ServeSettings"]

DEFAULT_MODEL_ROOTS = (Path(".fulmen/artifacts"),)
"""Where trainer jobs write versions by default (`FULMEN_TRAIN_ARTIFACTS_DIR`)."""


class ServeSettings(ApiKeySettings):
    """`fulmen serve`'s settings besides its options. Clients send one of `api_keys` (or of
    the keys in `api_key_file`) as `Authorization: Bearer <key>`; without any key the
    server listens on loopback only."""

    model_config = SettingsConfigDict(env_prefix="FULMEN_SERVE_", extra="ignore")

    model_roots: list[Path] = Field(
        default_factory=lambda: list(DEFAULT_MODEL_ROOTS),
        description="Directories adapters and models are loaded from (symlinks and `..` "
        "resolved); any other path is refused with 403. In the environment a JSON list: "
        '`FULMEN_SERVE_MODEL_ROOTS=["/artifacts"]`.',
    )
    replica_id: str | None = Field(
        default=None,
        description="The name this replica acknowledges versions under on the control topic "
        "(default: the pod name, `HOSTNAME`, else host:port).",
    )
    pool: str = Field(
        default="default",
        description="The pool of replicas this one serves in; agents await the acknowledgements "
        "of their pool (`FULMEN_PRODUCER__SERVING_POOL`).",
    )
    unload_grace_s: float = Field(
        default=600.0,
        ge=0,
        description="How long an adapter no version needs any more stays loaded before it is "
        "unloaded: longer than the longest rollout.",
    )
