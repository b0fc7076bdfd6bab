"""The API-key settings a Fulmen service reads, under its own prefix (`FULMEN_GATEWAY_`,
`FULMEN_SERVE_`): a subclass sets `env_prefix`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode

from fulmen.auth._keys import ApiKeys


class ApiKeySettings(BaseSettings):
    """Where a service's API keys come from; both sources together are the valid keys."""

    api_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="Keys clients send as `Authorization: Bearer <key>`; in the environment, "
        "comma-separated (`<PREFIX>API_KEYS=new,old` while rotating).",
    )
    api_key_file: Path | None = Field(
        default=None,
        description="A file of keys, one a line (a mounted Kubernetes Secret), read at start.",
    )

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return [key.strip() for key in value.split(",") if key.strip()]
        return value

    def load_api_keys(self) -> ApiKeys:
        """The keys of both sources. Raises `AuthError` (see `ApiKeys.load`)."""
        keys = (key.get_secret_value() for key in self.api_keys)
        return ApiKeys.load(keys, file=self.api_key_file)
