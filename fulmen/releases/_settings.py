"""What the release controller reads at start-up: `FULMEN_RELEASE__*` environment variables
(`FULMEN_RELEASE__ALPHA`, `FULMEN_RELEASE__MIN_EPISODES`, …)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from fulmen.releases._rule import ReleaseRule


class ReleaseSettings(ReleaseRule, BaseSettings):
    """The rule's parameters (see `ReleaseRule`) and the controller's own."""

    model_config = SettingsConfigDict(
        env_prefix="FULMEN_RELEASE__", env_nested_delimiter="__", extra="ignore", frozen=True
    )

    interval_s: float = Field(default=60.0, gt=0.0)
    """Seconds between two passes over the active canaries."""
    base_version: str = ""
    """The version id that episodes of the base deployment carry (the agents'
    `FULMEN_PRODUCER__MODEL_VERSION` / `RESOURCES_VERSION`): the parent arm of a canary
    published when no full version was in force."""
    publish_timeout_s: float = Field(default=30.0, gt=0.0)
    """How long publishing a decision may wait for the broker's acknowledgement."""

    def rule(self) -> ReleaseRule:
        """The rule's parameters alone."""
        return ReleaseRule.model_validate(self.model_dump(include=set(ReleaseRule.model_fields)))
