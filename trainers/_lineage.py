"""Published versions as the trainer sees them: which version is in force for an agent,
what it descends from, and where its artifact lives."""

from __future__ import annotations

from dataclasses import dataclass

from fulmen.store import LightningStore


@dataclass(frozen=True, slots=True)
class PublishedVersion:
    """A model version from the store's `versions` table."""

    version_id: str
    parent_version: str | None
    target_agent: str | None
    algorithm: str
    artifact_uri: str | None
    model_name: str | None
    metrics: dict[str, float]
    recipe: dict[str, str]
    """How it was trained beyond its algorithm (e.g. `pairing`: the rule of a DPO or KTO
    version's preference data)."""


@dataclass(frozen=True, slots=True)
class Lineage:
    """Every published model version, oldest first."""

    versions: tuple[PublishedVersion, ...]

    @classmethod
    def from_store(cls, store: LightningStore) -> Lineage:
        rows = store.sql(
            f"SELECT version_id, parent_version, target_agent, algorithm, artifact_uri, "
            f"model_name, metrics, recipe FROM {store.settings.database}.versions "
            "WHERE kind = 'model' ORDER BY published_at, version_id"
        ).to_pylist()
        return cls(
            tuple(
                PublishedVersion(
                    version_id=row["version_id"],
                    parent_version=row["parent_version"],
                    target_agent=row["target_agent"],
                    algorithm=row["algorithm"],
                    artifact_uri=row["artifact_uri"],
                    model_name=row["model_name"],
                    metrics=dict(row["metrics"]),
                    recipe=dict(row["recipe"]),
                )
                for row in rows
            )
        )

    def parents(self) -> dict[str, str | None]:
        return {v.version_id: v.parent_version for v in self.versions}

    def get(self, version_id: str) -> PublishedVersion | None:
        return next((v for v in reversed(self.versions) if v.version_id == version_id), None)

    def current(self, agent_name: str | None) -> PublishedVersion | None:
        """The version last published for `agent_name` (or for every agent): what its
        agents run now, since agents follow the newest version that targets them."""
        for version in reversed(self.versions):
            if version.target_agent is None or version.target_agent == agent_name:
                return version
        return None


@dataclass(frozen=True, slots=True)
class PromptVersion:
    """A prompt version from the store's `versions` table."""

    version_id: str
    target_agent: str | None
    prompt_templates: dict[str, str]


def prompt_in_force(
    store: LightningStore, agent_name: str | None, *, version_id: str | None = None
) -> PromptVersion | None:
    """The prompt version `version_id` when given (None when the store lacks it), else the
    one last published for `agent_name` or for every agent: what its agents use now."""
    rows = store.sql(
        f"SELECT version_id, target_agent, prompt_templates FROM {store.settings.database}"
        ".versions WHERE kind = 'prompt' ORDER BY published_at, version_id"
    ).to_pylist()
    versions = [
        PromptVersion(row["version_id"], row["target_agent"], dict(row["prompt_templates"]))
        for row in rows
    ]
    for version in reversed(versions):
        if version_id is not None:
            if version.version_id == version_id:
                return version
        elif version.target_agent is None or version.target_agent == agent_name:
            return version
    return None
