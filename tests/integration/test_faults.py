"""The fault suite: a broker outage, a store outage, two SIGKILLed workers, topics created on
first use, and every kind of bad message, during a run of good traffic through the SDK.
The store must hold exactly the good traffic (no loss, no duplicate, the right rewards) and
every bad message as a dead letter with its reason. `make chaos` runs a longer version
(`FULMEN_CHAOS=long`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.support.chaos import PLANS, reward_of, run

pytestmark = pytest.mark.timeout(3_600)


def _rows(store: Any, sql: str) -> list[dict[str, Any]]:
    return list(store.sql(sql.format(db=store.settings.database)).to_pylist())


def test_nothing_is_lost_or_repeated_and_every_bad_message_is_a_dead_letter(
    tmp_path: Path,
) -> None:
    plan = PLANS[os.environ.get("FULMEN_CHAOS", "ci")]
    stack, injected = run(plan, tmp_path)
    try:
        store = stack.client("chaos")
        raw = _rows(
            store,
            "SELECT 'spans' AS t, count() AS n, uniqExact(event_id) AS u FROM {db}.spans "
            "WHERE rollout_id LIKE 'c%' UNION ALL "
            "SELECT 'rewards', count(), uniqExact(event_id) FROM {db}.rewards "
            "WHERE rollout_id LIKE 'c%' UNION ALL "
            "SELECT 'rollouts', count(), uniqExact(event_id) FROM {db}.rollouts "
            "WHERE rollout_id LIKE 'c%'",
        )
        episodes = _rows(
            store,
            "SELECT rollout_id, argMax(reward, revision) AS reward, "
            "argMax(num_events, revision) AS events, argMax(status, revision) AS status "
            "FROM {db}.episodes GROUP BY rollout_id",
        )
        repeated = _rows(
            store,
            "SELECT count() AS n FROM (SELECT rollout_id, attempt, revision FROM {db}.episodes "
            "GROUP BY ALL HAVING count() > 1)",
        )
        dead = _rows(store, "SELECT topic, partition, offset, problem FROM {db}.dead_letters")
    finally:
        stack.store.stop()

    n = plan.rollouts
    assert {row["t"]: (row["n"], row["u"]) for row in raw} == {
        "spans": (6 * n, 6 * n),
        "rewards": (n, n),
        "rollouts": (2 * n, 2 * n),
    }
    assert repeated == [{"n": 0}]
    assert len(episodes) == n, "an episode of anything but the good traffic"
    assert {row["rollout_id"]: row["reward"] for row in episodes} == {
        f"c{i:05d}": reward_of(i) for i in range(n)
    }
    assert all(row["events"] == 9 and row["status"] == "succeeded" for row in episodes)
    stored = {f"{d['topic']}/{d['partition']}/{d['offset']}": d["problem"] for d in dead}
    assert stored == injected.expected
    assert len(dead) == len(stored), "a dead letter stored twice"
