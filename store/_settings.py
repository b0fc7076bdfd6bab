"""Where the LightningStore lives and how its tables are made."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, SecretStr


class TableTtl(BaseModel):
    """Days each table keeps its rows (by event or episode time)."""

    spans_days: int = Field(default=90, ge=1)
    rewards_days: int = Field(default=365, ge=1)
    rollouts_days: int = Field(default=365, ge=1)
    dead_letters_days: int = Field(default=30, ge=1)
    episodes_days: int = Field(default=365, ge=1)
    triplets_days: int = Field(default=180, ge=1)
    feedback_days: int = Field(default=365, ge=1)


class StoreSettings(BaseModel):
    """The store: embedded chDB at `path` unless `url` names a ClickHouse server.

    `username`/`password` is the pipeline's writing user (`fulmen store serve` needs a
    password unless started with `--insecure-no-auth`); `fulmen store serve` also admits
    the read-only `readers`. `replicated` makes every table a ReplicatedMergeTree (the
    `{shard}`/`{replica}` macros must be defined on the cluster); otherwise MergeTree with a
    deduplication window, so replayed batches with the same insert token are dropped too.
    """

    url: str | None = None
    path: Path = Path(".fulmen/store")
    database: str = Field(default="fulmen", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    username: str = "default"
    password: SecretStr = SecretStr("")
    readers: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="Read-only users (analysts, dashboards) of `fulmen store serve`, by name.",
    )
    replicated: bool = False
    dedup_window_blocks: int = Field(default=10_000, ge=1)
    ttl: TableTtl = Field(default_factory=TableTtl)
