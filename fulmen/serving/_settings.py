"""The policy server's settings (`FULMEN_SERVE_*`): its API keys and where it may load
adapters and models from."""

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
