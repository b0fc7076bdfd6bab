"""Rollout lifecycle and rewards posted over HTTP, as the SDK's own events.

`POST …/start` emits `RolloutEvent(phase="started")`, `POST …/finish` the rollout's root
span and `RolloutEvent(phase="finished")`, `POST …/rewards` a `Reward`, `POST …/feedback` a
`Feedback` — the events `@fulmen.rollout`, `fulmen.emit_reward` and `fulmen.emit_feedback`
emit in a Python agent, stamped the same way.
The gateway remembers when each rollout it started began (for the root span), at most
`max_open` of them, oldest forgotten first; a rollout finished without a remembered start
gets a root span that starts when it finished.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from fulmen.producers._context import to_json
from fulmen.producers._feedback import Thumb, feedback_event
from fulmen.producers._producer import Producer
from fulmen.producers._resources import VersionState
from fulmen.producers._spans import emit_span
from fulmen.producers.gateway._identity import Identity
from fulmen.schemas import (
    EventMeta,
    FeedbackSource,
    Reward,
    RewardSource,
    RolloutEvent,
    RolloutStatus,
)

# The body is parsed by pydantic's JSON parser, which reads `NaN`, `Infinity` and `-Infinity`
# (orjson would refuse them); such a reward is refused here with a 400, before any event.
_Finite = Annotated[float, Field(allow_inf_nan=False)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StartRollout(_Body):
    """`POST /rollouts[/{id}[/attempts/{n}]]/start` (every field optional)."""

    task_id: str = ""
    input: Any = None
    """The task input, recorded as JSON."""
    metadata: dict[str, str] = Field(default_factory=dict)


class FinishRollout(_Body):
    """`POST /rollouts/{id}[/attempts/{n}]/finish`."""

    status: RolloutStatus = "succeeded"
    error: str | None = None
    task_id: str = ""
    metadata: dict[str, str] = Field(default_factory=dict)


class PostReward(_Body):
    """`POST /rollouts/{id}[/attempts/{n}]/rewards`: as `fulmen.emit_reward`'s arguments."""

    value: _Finite
    name: str = "reward"
    dimensions: dict[str, _Finite] = Field(default_factory=dict)
    source: RewardSource = "programmatic"
    span_id: str | None = Field(default=None, pattern=r"^[0-9a-f]{16}$")
    """A span of the rollout (its call's `span_id`) that the reward scores."""
    comment: str | None = None


class PostFeedback(_Body):
    """`POST /rollouts/{id}[/attempts/{n}]/feedback`: as `fulmen.emit_feedback`'s arguments."""

    thumb: Thumb
    correction: str | None = None
    source: FeedbackSource = "human"
    comment: str | None = None
    span_id: str | None = None
    """The LLM call rated (its `span_id`); none rates the rollout's answer."""


class RolloutLifecycle:
    """Emits the lifecycle and reward events of rollouts named by an `Identity`."""

    def __init__(self, producer: Producer, versions: VersionState, *, max_open: int) -> None:
        self._producer = producer
        self._versions = versions
        self._max_open = max_open
        self._started: OrderedDict[tuple[str, int], int] = OrderedDict()

    def start(self, identity: Identity, body: StartRollout) -> None:
        active = identity.active()
        key = (active.rollout_id, active.attempt)
        self._started[key] = time.time_ns()
        self._started.move_to_end(key)
        while len(self._started) > self._max_open:
            self._started.popitem(last=False)
        self._producer.emit(
            RolloutEvent(
                meta=self._meta(identity),
                phase="started",
                task_id=body.task_id,
                trace_id=active.trace_id,
                input=None if body.input is None else to_json(body.input),
                metadata=body.metadata,
            )
        )

    def finish(self, identity: Identity, body: FinishRollout) -> None:
        active = identity.active()
        end_ns = time.time_ns()
        start_ns = self._started.pop((active.rollout_id, active.attempt), end_ns)
        emit_span(
            active,
            name="fulmen.rollout",
            span_id=active.root_span_id,
            parent_span_id=None,
            start_ns=start_ns,
            end_ns=end_ns,
            error=None if body.status == "succeeded" else (body.error or body.status),
            producer=self._producer,
            resources=self._versions.for_agent(identity.agent_name, identity.rollout_id),
        )
        self._producer.emit(
            RolloutEvent(
                meta=self._meta(identity),
                phase="finished",
                task_id=body.task_id,
                trace_id=active.trace_id,
                status=body.status,
                error=body.error,
                metadata=body.metadata,
            )
        )

    def reward(self, identity: Identity, body: PostReward) -> None:
        self._producer.emit(
            Reward(
                meta=self._meta(identity),
                name=body.name,
                value=body.value,
                dimensions=body.dimensions,
                source=body.source,
                span_id=body.span_id,
                comment=body.comment,
            )
        )

    def feedback(self, identity: Identity, body: PostFeedback) -> None:
        """Raises `ValueError` when the body breaks `feedback_event`'s rules."""
        self._producer.emit(
            feedback_event(
                self._meta(identity),
                body.thumb,
                span_id=body.span_id,
                correction=body.correction,
                source=body.source,
                comment=body.comment,
            )
        )

    def _meta(self, identity: Identity) -> EventMeta:
        assert identity.rollout_id is not None
        return self._producer.meta(
            identity.rollout_id,
            identity.attempt,
            agent_name=identity.agent_name,
            resources=self._versions.for_agent(identity.agent_name, identity.rollout_id),
        )
