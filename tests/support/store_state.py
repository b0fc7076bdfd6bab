"""What a run of stream workers leaves in the store, in a form two runs can be compared by:
raw row counts, each episode's latest revision, duplicates and the triplets."""

from __future__ import annotations

from typing import Any

from fulmen.schemas import Event
from fulmen.store import LightningStore
from tests.support.events import rollout


def scalar(store: LightningStore, sql: str) -> Any:
    """The `v` column of the first row `sql` returns; None while the table is missing."""
    try:
        return store.sql(sql).to_pylist()[0]["v"]
    except Exception:
        return None


def episodes_written(store: LightningStore) -> int:
    """Episode revisions in the store."""
    db = store.settings.database
    return int(scalar(store, f"SELECT count() AS v FROM {db}.episodes") or 0)


def rollout_events(prefix: str, rollouts: int) -> list[Event]:
    """The events of `rollouts` whole rollouts named `<prefix><i>`."""
    return [event for i in range(rollouts) for event in rollout(f"{prefix}{i}")]


def store_state(store: LightningStore) -> dict[str, Any]:
    """What a run leaves in the store, independent of when revisions happened."""
    db = store.settings.database
    queries = {
        "raw": " UNION ALL ".join(
            f"SELECT '{t}' AS t, count() AS rows, uniqExact(event_id) AS events FROM {db}.{t}"
            for t in ("spans", "rewards", "rollouts")
        ),
        "latest": f"""SELECT rollout_id, attempt, argMax(reward, revision) AS reward,
                             argMax(num_events, revision) AS n, argMax(status, revision) AS st
                      FROM {db}.episodes GROUP BY rollout_id, attempt ORDER BY rollout_id""",
        "episode_dupes": f"""SELECT count() AS v FROM (SELECT rollout_id, attempt, revision
                             FROM {db}.episodes GROUP BY ALL HAVING count() > 1)""",
        "triplet_dupes": f"""SELECT count() AS v FROM (SELECT rollout_id, attempt, revision, step
                             FROM {db}.triplets GROUP BY ALL HAVING count() > 1)""",
        "triplets": f"""SELECT rollout_id, step, reward, prompt FROM {db}.triplets
                        WHERE (rollout_id, attempt, revision) IN (SELECT rollout_id, attempt,
                              max(revision) FROM {db}.episodes GROUP BY rollout_id, attempt)
                        ORDER BY rollout_id, step""",
    }
    state = {name: store.sql(sql).to_pylist() for name, sql in queries.items()}
    state["raw"] = {row["t"]: (row["rows"], row["events"]) for row in state["raw"]}
    return state


def raw_counts(spans: int, rewards: int, rollouts: int) -> dict[str, tuple[int, int]]:
    """Row counts of the raw tables, each row a distinct event."""
    return {
        "spans": (spans, spans),
        "rewards": (rewards, rewards),
        "rollouts": (rollouts, rollouts),
    }
