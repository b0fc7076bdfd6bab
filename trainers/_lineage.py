"""Published versions as the trainer sees them: which version is in force for an agent,
what it descends from, and where its artifact lives.

The version in force is the stable one of the control topic's fold (`ReleaseBoard`) over
what the store kept of it: versions and release decisions, in publication order. A canary
still being compared, or one rolled back, is never the parent of the next job.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fulmen.producers import ReleaseBoard
from fulmen.schemas import EventMeta, ReleaseDecision, VersionEvent
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
    """Every published model version, oldest first, and the fold of the releases."""

    versions: tuple[PublishedVersion, ...]
    releases: ReleaseBoard

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
            ),
            releases(store),
        )

    def parents(self) -> dict[str, str | None]:
        return {v.version_id: v.parent_version for v in self.versions}

    def get(self, version_id: str) -> PublishedVersion | None:
        return next((v for v in reversed(self.versions) if v.version_id == version_id), None)

    def current(self, agent_name: str | None) -> PublishedVersion | None:
        """The model version `agent_name`'s rollouts run outside any canary: the last one
        published for it (or for every agent) at 100%, or promoted, unless rolled back."""
        stable = self.releases.slots_for(agent_name).stable.get("model")
        return None if stable is None else self.get(stable.version_id)


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
    one `agent_name`'s rollouts run outside any canary (see `stable_version`)."""
    if version_id is None:
        stable = releases(store).slots_for(agent_name).stable.get("prompt")
        if stable is None:
            return None
        version_id = stable.version_id
    rows = store.sql(
        f"SELECT version_id, target_agent, prompt_templates FROM {store.settings.database}"
        ".versions WHERE kind = 'prompt' ORDER BY published_at, version_id"
    ).to_pylist()
    versions = [
        PromptVersion(row["version_id"], row["target_agent"], dict(row["prompt_templates"]))
        for row in rows
    ]
    return next((v for v in reversed(versions) if v.version_id == version_id), None)


def releases(store: LightningStore) -> ReleaseBoard:
    """The store's versions and release decisions folded in publication order: what the
    control topic says every agent runs."""
    board = ReleaseBoard()
    for event in _control_events(store):
        board.apply(event)
    return board


def _control_events(store: LightningStore) -> list[VersionEvent | ReleaseDecision]:
    """The versions and release decisions the store kept, in publication order."""
    db = store.settings.database
    versions = store.sql(
        "SELECT event_id, published_at AS at, version_id, toString(kind) AS kind, target_agent, "
        f"model_name, traffic_share FROM {db}.versions"
    ).to_pylist()
    decisions = store.sql(
        "SELECT event_id, decided_at AS at, version_id, kind, target_agent, to_version, action, "
        f"traffic_share FROM {db}.release_decisions"
    ).to_pylist()
    events: list[tuple[Any, str, VersionEvent | ReleaseDecision]] = []
    for row in versions:
        fields = {k: row[k] for k in ("version_id", "kind", "target_agent", "model_name")}
        event = VersionEvent(meta=_meta(row), traffic_share=row["traffic_share"], **fields)
        events.append((row["at"], row["event_id"], event))
    for row in decisions:
        fields = {k: row[k] for k in ("version_id", "kind", "target_agent", "to_version",
                                      "action", "traffic_share")}  # fmt: skip
        events.append((row["at"], row["event_id"], ReleaseDecision(meta=_meta(row), **fields)))
    return [event for _at, _id, event in sorted(events, key=lambda e: (e[0], e[1]))]


def _meta(row: dict[str, Any]) -> EventMeta:
    """An envelope for a control event rebuilt from its row (only its id and time count)."""
    return EventMeta(event_id=row["event_id"], rollout_id=f"version-{row['event_id']}",
                     attempt=1, producer_id="store", sequence=0,
                     emitted_at_unix_nano=0)  # fmt: skip
