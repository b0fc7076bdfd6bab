"""The worker's topics, made ready before its Faust application starts."""

from __future__ import annotations

import logging

from fulmen.errors import FulmenError
from fulmen.producers import FulmenSettings
from fulmen.streams._settings import WorkerSettings

log = logging.getLogger("fulmen.worker")


class TopicMismatch(FulmenError):
    """The input topics do not share one partition count, so they are not co-partitioned."""


def prepare_topics(settings: FulmenSettings, worker: WorkerSettings, *, changelog: str) -> int:
    """Create the input, episode and dead-letter topics that are missing, let the buffer
    table's changelog take records of a whole rollout, and return the input topics'
    partition count.

    Inputs created by the broker on first use have the broker's `num.partitions`; the
    worker follows what the inputs have (and says so) rather than `worker.partitions`. Its
    own writes then never meet a topic without metadata (aiokafka's partitioner fails on
    one), and its subscription finds every input at start.
    """
    from fulmen.kafka import ensure_topics

    topics = settings.topics
    inputs = topics.stream_inputs()
    # Like Faust's own start-up, wait for the broker as long as it takes.
    found = ensure_topics(settings.kafka, inputs, partitions=worker.partitions, wait_s=None)
    counts = {found[topic] for topic in inputs}
    if len(counts) > 1:
        raise TopicMismatch(
            f"the input topics have different partition counts ({found}); episodes are "
            "assembled per rollout only when all of them are partitioned alike"
        )
    (partitions,) = counts
    if partitions != worker.partitions:
        log.warning(
            "the input topics have %d partitions, FULMEN_WORKER_PARTITIONS says %d: using %d",
            partitions,
            worker.partitions,
            partitions,
        )
    config = {
        changelog: {
            "cleanup.policy": "compact",
            "max.message.bytes": str(worker.changelog_max_bytes),
        }
    }
    ensure_topics(
        settings.kafka,
        [*topics.stream_outputs(), changelog],
        partitions=partitions,
        config=config,
        wait_s=None,
    )
    return partitions
