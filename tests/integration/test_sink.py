"""The stream sink's exactly-once writes against a real chDB store, crashes simulated at
the points where a worker can die."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from fulmen.store import LightningStore
from fulmen.streams import DeadLetter, EpisodeAssembler, Received, triplets_table
from fulmen.streams._sink import StoreSink
from tests.support.events import rollout

pytestmark = pytest.mark.integration


def _assembled(rollout_ids: list[str]) -> EpisodeAssembler:
    assembler = EpisodeAssembler()
    for rollout_id in rollout_ids:
        for event in rollout(rollout_id):
            assembler.add(event, now=0.0)
    return assembler


def test_a_crash_between_the_triplets_and_the_episodes_insert_writes_no_triplet_twice(
    new_store: Callable[[], LightningStore],
) -> None:
    store = new_store()
    before_crash = _assembled(["a", "b"]).collect(now=10.0)
    store.insert("triplets", triplets_table(before_crash), dedup_token="triplets/crashed")

    after_restart = _assembled(["a", "b", "c"]).collect(now=10.0)  # another batch, token
    written = StoreSink(store).write_episodes(after_restart)

    db = store.settings.database
    rows = store.sql(
        f"SELECT rollout_id, count() AS n FROM {db}.triplets GROUP BY rollout_id ORDER BY 1"
    ).to_pylist()
    episodes = store.sql(f"SELECT count() AS n FROM {db}.episodes").to_pylist()
    assert rows == [{"rollout_id": r, "n": 3} for r in ("a", "b", "c")]
    assert episodes == [{"n": 3}]
    assert written == 3


def _dead(topic: str, partition: int, offset: int) -> DeadLetter:
    return DeadLetter.of(Received(topic, partition, offset, b"key", b"value"), "truncated", "x")


def test_dead_letters_replayed_in_other_batches_are_stored_once(
    new_store: Callable[[], LightningStore],
) -> None:
    store = new_store()
    first = [_dead(topic, p, o) for topic in ("s", "r") for p in (0, 1) for o in (5, 6)]
    assert StoreSink(store).write_dead(first[:5]) == 5
    # A restarted worker reads from older offsets, in batches cut elsewhere.
    replay = [*first, _dead("s", 1, 7), _dead("r", 0, 9)]
    assert StoreSink(store).write_dead([*replay, *replay]) == 5  # read twice in one batch
    rows = store.sql(
        f"SELECT topic, partition, offset FROM {store.settings.database}.dead_letters ORDER BY ALL"
    ).to_pylist()
    expected = sorted({(d.message.topic, d.message.partition, d.message.offset) for d in replay})
    assert [(r["topic"], r["partition"], r["offset"]) for r in rows] == expected
