"""Episode-completed events: what the scheduler counts to decide that a window is ready."""

from __future__ import annotations

import itertools
import time

import uuid_utils

from fulmen.schemas import EpisodeCompleted, EventMeta
from fulmen.streams._assembly import EpisodeRow


class Announcer:
    """Turns written episode rows into `EpisodeCompleted` events from one producer identity
    (`<role>-<random suffix>`), numbered by its own sequence."""

    def __init__(self, role: str) -> None:
        self.producer_id = f"{role}-{uuid_utils.uuid7().hex[-8:]}"
        self._sequence = itertools.count()

    def completed(self, row: EpisodeRow) -> EpisodeCompleted:
        return EpisodeCompleted(
            meta=EventMeta(
                event_id=str(uuid_utils.uuid7()),
                rollout_id=row.rollout_id,
                attempt=row.attempt,
                producer_id=self.producer_id,
                sequence=next(self._sequence),
                agent_name=row.agent_name,
                model_version=row.model_version,
                resources_version=row.resources_version,
                emitted_at_unix_nano=time.time_ns(),
            ),
            revision=row.revision,
            task_id=row.task_id,
            status=row.status,
            reward=0.0 if row.reward is None else row.reward,
            num_llm_calls=row.num_llm_calls,
            finished_at_unix_nano=row.finished_at,
            scored=row.scored,
        )
