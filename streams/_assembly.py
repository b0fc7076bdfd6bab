"""Episode assembly: a rollout's events in, an episode and its triplets out.

An episode is *scored* when at least one reward of the primary name
(`AssemblyPolicy.primary_reward`) reached it, for the rollout or for one of its spans; its
`reward` is their sum, and its triplets carry what the credit assigner gives each call. An
episode with no such reward is *unscored*: its `reward` and its triplets' rewards are None,
never 0.0, because a lost or never-sent reward is not evidence of a zero. The credit
assigner is not asked about unscored episodes. A late reward makes the next revision scored.

Plain logic over a `RolloutBuffer`, shared by the Faust application (which keeps buffers in
a changelog-backed table keyed by rollout) and the embedded runner (a dict). Nothing here
reads a clock: callers pass `now` (the worker's wall clock, Unix seconds), used for the
grace period, the idle timeout and `assembled_at`. Events are ordered by producer sequence
numbers, never by their timestamps.

Lifecycle of a buffer: events arrive (duplicates by `event_id` are ignored) → it is *due*
once the rollout finished and `grace_s` passed without news, or nothing arrived for
`idle_timeout_s` (status `timeout`) → assembled as revision 0 → a later event (a late
reward) makes it due again after `grace_s`, and it is assembled as revision 1, 2, … →
`retention_s` after its last write it is forgotten.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeGuard

from pydantic import BaseModel, Field

from fulmen.schemas import (
    VERSION_SEPARATOR,
    EpisodeStatus,
    Event,
    Reward,
    RolloutEvent,
    Span,
)
from fulmen.streams._credit import CreditAssigner, FinalReward, split_rewards


@dataclass(frozen=True)
class AssemblyPolicy:
    grace_s: float = 5.0
    """How long after `finished` (or a late event) to wait for late rewards."""
    idle_timeout_s: float = 300.0
    """A rollout with no event for this long is assembled with status `timeout`."""
    retention_s: float = 3600.0
    """How long a written episode stays revisable by late rewards."""
    primary_reward: str = "reward"
    """The reward name that scores episodes and triplets; others are kept in `rewards`."""
    credit: CreditAssigner = field(default_factory=FinalReward)


class RolloutBuffer(BaseModel):
    """Everything seen of one rollout attempt, serializable for a changelog table."""

    rollout_id: str
    attempt: int
    started: RolloutEvent | None = None
    finished: RolloutEvent | None = None
    spans: list[Span] = Field(default_factory=list)
    rewards: list[Reward] = Field(default_factory=list)
    seen: set[str] = Field(default_factory=set)
    last_event_at: float = 0.0
    revision: int = -1
    """The last revision written; -1 before the first."""
    changed_since_write: bool = False


@dataclass(frozen=True)
class EpisodeRow:
    """One row of the `episodes` table."""

    rollout_id: str
    attempt: int
    revision: int
    agent_name: str
    task_id: str
    model_version: str
    resources_version: str
    status: EpisodeStatus
    scored: bool
    """Whether a reward of the primary name reached the episode (see the module's doc)."""
    reward: float | None
    """Sum of the primary name's rewards, rollout- and span-level; None when unscored."""
    rewards: dict[str, float]
    """Sum of the rewards of each name, the primary one included (an unscored episode may
    still have rewards of other names)."""
    credit_assignment: str
    started_at: int
    finished_at: int
    assembled_at: int
    num_spans: int
    num_llm_calls: int
    num_tool_calls: int
    num_tool_errors: int
    input: str | None
    error: str | None
    num_events: int
    """Distinct events the revision was assembled from."""


@dataclass(frozen=True)
class TripletRow:
    """One row of the `triplets` table: an LLM call with its credited reward."""

    rollout_id: str
    attempt: int
    revision: int
    step: int
    span_id: str
    agent_name: str
    task_id: str
    model_version: str
    resources_version: str
    finished_at: int
    request_model: str
    prompt: str
    response: str
    prompt_token_ids: list[int]
    response_token_ids: list[int]
    response_logprobs: list[float]
    reward: float | None
    """The reward the credit assigner gave this call; None when the episode is unscored.
    A nullable reward rather than a `scored` flag: a trainer that reads a triplet's reward
    cannot mistake a missing one for 0.0, and the store's windows leave unscored episodes
    out unless asked (`WindowQuery.include_unscored`), so the reward a trainer reads is a
    plain float in every window it asks for by default."""
    advantage: float | None = None


@dataclass(frozen=True)
class Episode:
    row: EpisodeRow
    triplets: list[TripletRow]


def is_episode_input(event: Event) -> TypeGuard[Span | Reward | RolloutEvent]:
    """Whether `event` is what episodes are assembled from (a span, a reward, a rollout
    event). Feedback is stored beside the episode it rates but changes no episode; version
    and episode events belong to none."""
    return isinstance(event, (Span, Reward, RolloutEvent))


def add(buffer: RolloutBuffer, event: Event, *, now: float) -> bool:
    """Add `event` to its rollout's buffer; False when it is a duplicate (or not an episode's
    input, see `is_episode_input`)."""
    if not is_episode_input(event) or event.meta.event_id in buffer.seen:
        return False
    buffer.seen.add(event.meta.event_id)
    buffer.last_event_at = max(buffer.last_event_at, now)
    buffer.changed_since_write = True
    if isinstance(event, Span):
        buffer.spans.append(event)
    elif isinstance(event, Reward):
        buffer.rewards.append(event)
    elif event.phase == "started":
        buffer.started = event
    else:
        buffer.finished = event
    return True


def is_due(buffer: RolloutBuffer, policy: AssemblyPolicy, *, now: float) -> bool:
    """Whether the buffer should be (re)assembled now."""
    if not buffer.changed_since_write or not (buffer.spans or buffer.started):
        return False
    quiet = now - buffer.last_event_at
    if buffer.finished is not None or buffer.revision >= 0:
        return quiet >= policy.grace_s
    return quiet >= policy.idle_timeout_s


def is_expired(buffer: RolloutBuffer, policy: AssemblyPolicy, *, now: float) -> bool:
    """Whether the buffer can be forgotten: written and quiet for `retention_s`, or holding
    only events that never formed an episode (e.g. a reward for an unknown rollout)."""
    quiet = now - buffer.last_event_at
    if is_settled(buffer):
        return quiet >= policy.retention_s
    orphan = not buffer.spans and buffer.started is None
    return orphan and quiet >= policy.idle_timeout_s


def is_settled(buffer: RolloutBuffer) -> bool:
    """Whether the buffer's episode is written and nothing arrived since."""
    return buffer.revision >= 0 and not buffer.changed_since_write


def reconcile(buffer: RolloutBuffer, written: tuple[int, int] | None) -> bool:
    """Align a due buffer with the store's latest (revision, num_events) of its episode, which
    is ahead of the buffer after a restart that lost the buffer's last update. True when the
    store already holds what the buffer has: the buffer is rewound so that `assemble`
    reproduces that revision, to be announced but not written again. Otherwise the next
    `assemble` writes the revision after the store's."""
    if written is None or written[0] <= buffer.revision:
        return False
    revision, num_events = written
    if num_events >= len(buffer.seen):
        buffer.revision = revision - 1
        return True
    buffer.revision = revision
    return False


def assemble(buffer: RolloutBuffer, policy: AssemblyPolicy, *, now: float) -> Episode:
    """The next revision of the buffer's episode; marks the buffer written."""
    revision = buffer.revision + 1
    spans = sorted(buffer.spans, key=lambda s: (s.meta.producer_id, s.meta.sequence))
    calls = [span for span in spans if span.llm is not None]
    tools = [span for span in spans if span.tool is not None]
    scores = split_rewards(buffer.rewards, primary=policy.primary_reward)
    scored = any(reward.name == policy.primary_reward for reward in buffer.rewards)
    credited: list[float | None] = (
        list(policy.credit.assign(calls, scores)) if scored else [None] * len(calls)
    )
    first = buffer.started or (spans[0] if spans else buffer.finished)
    assert first is not None, "assemble() needs a started event or a span"
    task_id = buffer.started.task_id if buffer.started else ""
    finished_ns = _finished_ns(buffer, spans)
    status, error = _status(buffer)
    named: dict[str, float] = {}
    for reward in buffer.rewards:
        named[reward.name] = named.get(reward.name, 0.0) + reward.value
    row = EpisodeRow(
        rollout_id=buffer.rollout_id,
        attempt=buffer.attempt,
        revision=revision,
        agent_name=first.meta.agent_name,
        task_id=task_id,
        model_version=_served_by(calls) or first.meta.model_version,
        resources_version=first.meta.resources_version,
        status=status,
        scored=scored,
        reward=scores.final + sum(scores.by_span.values()) if scored else None,
        rewards=named,
        credit_assignment=policy.credit.name,
        started_at=_started_ns(buffer, spans),
        finished_at=finished_ns,
        assembled_at=int(now * 1000),
        num_spans=len(spans),
        num_llm_calls=len(calls),
        num_tool_calls=len(tools),
        num_tool_errors=sum(1 for span in tools if span.status.code == "ERROR"),
        input=buffer.started.input if buffer.started else None,
        error=error,
        num_events=len(buffer.seen),
    )
    triplets = [
        TripletRow(
            rollout_id=buffer.rollout_id,
            attempt=buffer.attempt,
            revision=revision,
            step=step,
            span_id=call.span_id,
            agent_name=call.meta.agent_name,
            task_id=task_id,
            model_version=call.meta.model_version,
            resources_version=call.meta.resources_version,
            finished_at=finished_ns,
            request_model=call.llm.request_model,
            prompt=call.llm.input_messages,
            response=call.llm.output_messages,
            prompt_token_ids=call.llm.prompt_token_ids,
            response_token_ids=call.llm.response_token_ids,
            response_logprobs=call.llm.response_logprobs,
            reward=reward,
        )
        for step, (call, reward) in enumerate(zip(calls, credited, strict=True))
        if call.llm is not None
    ]
    buffer.revision = revision
    buffer.changed_since_write = False
    return Episode(row=row, triplets=triplets)


def _served_by(calls: list[Span]) -> str:
    """The model versions that served an episode's LLM calls, each once, in call order,
    joined by `VERSION_SEPARATOR` (a rollout that straddled a swap); "" without calls."""
    return VERSION_SEPARATOR.join(dict.fromkeys(call.meta.model_version for call in calls))


def _status(buffer: RolloutBuffer) -> tuple[EpisodeStatus, str | None]:
    if buffer.finished is None or buffer.finished.status is None:
        return "timeout", None
    return buffer.finished.status, buffer.finished.error


def _started_ns(buffer: RolloutBuffer, spans: list[Span]) -> int:
    if buffer.started is not None:
        return buffer.started.meta.emitted_at_unix_nano
    return min(span.start_time_unix_nano for span in spans)


def _finished_ns(buffer: RolloutBuffer, spans: list[Span]) -> int:
    if buffer.finished is not None:
        return buffer.finished.meta.emitted_at_unix_nano
    ends = [span.end_time_unix_nano for span in spans]
    return max(ends) if ends else _started_ns(buffer, spans)
