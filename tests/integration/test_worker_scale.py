"""Workers scale as Kafka consumers do: two workers share the four partitions of the input
topics, one is SIGKILLed mid-stream and a third one joins; the store ends exactly as one
clean worker leaves it (episodes, triplets and raw rows: nothing lost, nothing twice)."""

from __future__ import annotations

import signal
import time

import pytest

from tests.support.stack import Stack, Worker, wait_for
from tests.support.store_state import episodes_written, raw_counts, rollout_events, store_state

pytestmark = pytest.mark.timeout(600)

ROLLOUTS = 300


def _start(*workers: Worker) -> None:
    for worker in workers:
        worker.start()
    for worker in workers:
        wait_for(worker.answers, timeout_s=120, what="a worker's web server")


def test_two_workers_one_killed_and_a_third_joining_leave_what_a_clean_run_leaves(
    stack: Stack,
) -> None:
    events = rollout_events("s", ROLLOUTS)
    first, second = stack.worker("scale", "scale"), stack.worker("scale", "scale")
    _start(first, second)
    stack.wait_for_group("scale", 2)  # both hold partitions before any event is sent
    store = stack.client("scale")
    stack.produce(events[: len(events) // 2])
    wait_for(lambda: episodes_written(store) >= 20, timeout_s=120, what="the first episodes")
    both = first.metrics()["fulmen_worker_events_in_total"] > 0
    both = both and second.metrics()["fulmen_worker_events_in_total"] > 0
    stack.produce(events[len(events) // 2 :])
    time.sleep(0.5)
    first.stop(signal.SIGKILL)
    assert episodes_written(store) < ROLLOUTS, "the kill came too late to be mid-stream"
    third = stack.worker("scale", "scale")  # another member: the dead one's partitions move
    _start(third)
    try:
        wait_for(lambda: episodes_written(store) >= ROLLOUTS, timeout_s=240, what="every episode")
        time.sleep(3)  # a grace period: anything written twice would show now
    finally:
        second.stop()
        third.stop()

    clean = stack.worker("clean", "clean")
    _start(clean)
    try:
        clean_store = stack.client("clean")
        wait_for(
            lambda: episodes_written(clean_store) >= ROLLOUTS, timeout_s=180, what="a clean run"
        )
        time.sleep(3)
    finally:
        clean.stop()
    assert both, "the two workers did not share the partitions"
    after, clean_run = store_state(store), store_state(clean_store)
    assert after["episode_dupes"] == [{"v": 0}]
    assert after["triplet_dupes"] == [{"v": 0}]
    assert after == clean_run
    assert clean_run["raw"] == raw_counts(6 * ROLLOUTS, ROLLOUTS, 2 * ROLLOUTS)
