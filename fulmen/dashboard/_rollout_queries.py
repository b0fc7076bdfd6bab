"""The dashboard's questions about rollouts: the filtered rollout list, the filter's choices, and
one rollout's spans, rewards and episodes. Parameterised SQL, typed rows out (times as
`DateTime64(3)` UTC, episodes at their latest revision, raw span rows once per `event_id`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fulmen.dashboard._filters import RolloutFilter
from fulmen.dashboard._reader import StoreReader


@dataclass(frozen=True)
class RolloutRow:
    """One attempt of a rollout: what its rollout events and its latest episode say.

    `status` is the episode's once assembled, else the rollout's `finished` status, else
    `running`. `scored`, `reward` and the counts are None until the episode is assembled;
    an assembled episode that no reward of the primary name reached has `scored` False and
    `reward` None (unknown, not 0).
    """

    rollout_id: str
    attempt: int
    agent_name: str
    task_id: str
    model_version: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    scored: bool | None
    reward: float | None
    revision: int | None
    num_spans: int | None
    num_llm_calls: int | None
    num_tool_calls: int | None
    num_tool_errors: int | None
    input: str | None
    error: str | None


@dataclass(frozen=True)
class RolloutPage:
    """One page of /rollouts: the rows, how many rollouts match the filter in all, and how
    many of those are assembled but unscored."""

    rows: list[RolloutRow]
    total: int
    unscored: int = 0


@dataclass(frozen=True)
class FilterChoices:
    """Values seen in the store, offered as suggestions in the filter form."""

    agents: list[str]
    versions: list[str]


@dataclass(frozen=True)
class SpanRow:
    """One span of a rollout, with its GenAI LLM-call and tool-call fields (empty strings
    when the span is neither). Messages are the JSON text the SDK recorded."""

    attempt: int
    span_id: str
    parent_span_id: str | None
    name: str
    kind: str
    status_code: str
    status_message: str
    start_time: datetime
    duration_ms: float
    request_model: str
    response_model: str | None
    input_messages: str
    output_messages: str
    input_tokens: int | None
    output_tokens: int | None
    tool_name: str
    tool_call_id: str | None
    tool_arguments: str
    tool_result: str


@dataclass(frozen=True)
class RewardRow:
    """One reward event of a rollout; `span_id` set when it scores one step."""

    attempt: int
    name: str
    value: float
    source: str
    span_id: str | None
    comment: str | None
    emitted_at: datetime


@dataclass(frozen=True)
class FeedbackRow:
    """One feedback event on a rollout (`fulmen.emit_feedback`); `span_id` set when it rates
    one call, else it rates the answer."""

    attempt: int
    thumbs_up: bool
    source: str
    span_id: str | None
    correction: str | None
    comment: str | None
    emitted_at: datetime


@dataclass(frozen=True)
class EpisodeInfo:
    """The latest revision of one attempt's episode: its rewards by name and how they were
    credited to steps (`reward` None when unscored)."""

    attempt: int
    revision: int
    scored: bool
    reward: float | None
    rewards: dict[str, float]
    credit_assignment: str


@dataclass(frozen=True)
class RolloutDetail:
    """Everything /rollouts/{id} shows: each attempt, its spans, rewards, feedback and
    episode."""

    attempts: list[RolloutRow]
    spans: list[SpanRow]
    rewards: list[RewardRow]
    episodes: list[EpisodeInfo]
    feedback: list[FeedbackRow] = field(default_factory=list)


_ROLLOUTS = """
WITH r AS (
    SELECT rollout_id, attempt,
           any(agent_name) AS agent_name,
           any(task_id) AS task_id,
           argMin(model_version, emitted_at) AS model_version,
           toDateTime64(min(emitted_at), 3, 'UTC') AS started_at,
           if(countIf(phase = 'finished') > 0,
              toDateTime64(maxIf(emitted_at, phase = 'finished'), 3, 'UTC'), NULL) AS finished_at,
           anyIf(status, phase = 'finished') AS rollout_status,
           anyIf(input, phase = 'started') AS rollout_input,
           anyIf(error, phase = 'finished') AS rollout_error
    FROM $db.rollouts
    WHERE $inner
    GROUP BY rollout_id, attempt
), e AS (
    SELECT rollout_id, attempt, toUInt8(1) AS assembled,
           max(revision) AS e_revision,
           argMax(status, revision) AS e_status,
           argMax(scored, revision) AS e_scored,
           argMax(reward, revision) AS e_reward,
           argMax(num_spans, revision) AS e_spans,
           argMax(num_llm_calls, revision) AS e_llm_calls,
           argMax(num_tool_calls, revision) AS e_tool_calls,
           argMax(num_tool_errors, revision) AS e_tool_errors
    FROM $db.episodes
    WHERE rollout_id IN (SELECT rollout_id FROM r)
    GROUP BY rollout_id, attempt
), joined AS (
    SELECT r.rollout_id AS rollout_id, r.attempt AS attempt, r.agent_name AS agent_name,
           r.task_id AS task_id, r.model_version AS model_version,
           r.started_at AS started_at, r.finished_at AS finished_at,
           toString(if(e.assembled = 1, e.e_status, ifNull(r.rollout_status, 'running')))
               AS status,
           if(e.assembled = 1, e.e_scored, NULL) AS scored,
           if(e.assembled = 1, e.e_reward, NULL) AS reward,
           if(e.assembled = 1, e.e_revision, NULL) AS revision,
           if(e.assembled = 1, e.e_spans, NULL) AS num_spans,
           if(e.assembled = 1, e.e_llm_calls, NULL) AS num_llm_calls,
           if(e.assembled = 1, e.e_tool_calls, NULL) AS num_tool_calls,
           if(e.assembled = 1, e.e_tool_errors, NULL) AS num_tool_errors,
           r.rollout_input AS input, r.rollout_error AS error
    FROM r LEFT JOIN e ON r.rollout_id = e.rollout_id AND r.attempt = e.attempt
)
"""


def _rollout_conditions(where: RolloutFilter) -> tuple[str, str, dict[str, Any]]:
    """(inner WHERE over raw rollout events, outer WHERE over joined rows, parameters)."""
    inner = ["1"]
    outer = ["1"]
    parameters: dict[str, Any] = {}
    if where.agent is not None:  # constant per rollout, and a prefix of the ordering key
        inner.append("agent_name = {agent:String}")
        parameters["agent"] = where.agent
    if where.task is not None:
        outer.append("position(task_id, {task:String}) > 0")
        parameters["task"] = where.task
    if where.version is not None:
        outer.append("model_version = {version:String}")
        parameters["version"] = where.version
    if where.status is not None:
        outer.append("status = {status:String}")
        parameters["status"] = where.status
    if where.min_reward is not None:
        outer.append("reward >= {min_reward:Float64}")
        parameters["min_reward"] = where.min_reward
    if where.max_reward is not None:
        outer.append("reward <= {max_reward:Float64}")
        parameters["max_reward"] = where.max_reward
    if where.since is not None:
        outer.append("started_at >= {since:DateTime64(3, 'UTC')}")
        parameters["since"] = where.since
    if where.until is not None:
        outer.append("started_at < {until:DateTime64(3, 'UTC')}")
        parameters["until"] = where.until
    return " AND ".join(inner), " AND ".join(outer), parameters


def _rollout_row(row: Mapping[str, Any]) -> RolloutRow:
    return RolloutRow(**{name: row[name] for name in RolloutRow.__dataclass_fields__})


def rollouts(reader: StoreReader, where: RolloutFilter) -> RolloutPage:
    """The rollouts matching `where`, newest first, one page of them, and the total."""
    inner, outer, parameters = _rollout_conditions(where)
    base = _ROLLOUTS.replace("$inner", inner)
    total = reader.rows(
        f"{base} SELECT count() AS n, countIf(scored = false) AS unscored "
        f"FROM joined WHERE {outer}",
        parameters,
    )
    parameters |= {"limit": where.page_size, "offset": (where.page - 1) * where.page_size}
    rows = reader.rows(
        f"{base} SELECT * FROM joined WHERE {outer} "
        "ORDER BY started_at DESC, rollout_id, attempt "
        "LIMIT {limit:UInt32} OFFSET {offset:UInt64}",
        parameters,
    )
    return RolloutPage(
        rows=[_rollout_row(row) for row in rows],
        total=int(total[0]["n"]),
        unscored=int(total[0]["unscored"]),
    )


def filter_choices(reader: StoreReader) -> FilterChoices:
    """The agents and model versions that have rollouts, sorted."""
    rows = reader.rows(
        "SELECT groupUniqArray(toString(agent_name)) AS agents, "
        "groupUniqArray(toString(model_version)) AS versions FROM $db.rollouts"
    )
    return FilterChoices(agents=sorted(rows[0]["agents"]), versions=sorted(rows[0]["versions"]))


def rollout_detail(reader: StoreReader, rollout_id: str) -> RolloutDetail | None:
    """Every attempt of `rollout_id` with its spans (start order), rewards, feedback and
    episodes; None when the store has no rollout events with that id."""
    base = _ROLLOUTS.replace("$inner", "rollout_id = {rollout_id:String}")
    parameters = {"rollout_id": rollout_id}
    attempts = reader.rows(f"{base} SELECT * FROM joined ORDER BY attempt", parameters)
    if not attempts:
        return None
    spans = reader.rows(
        """
        SELECT attempt, span_id, parent_span_id, toString(name) AS name, toString(kind) AS kind,
               toString(status_code) AS status_code, status_message,
               toDateTime64(start_time, 3, 'UTC') AS start_time, duration_ms,
               toString(llm_request_model) AS request_model,
               llm_response_model AS response_model,
               llm_input_messages AS input_messages, llm_output_messages AS output_messages,
               llm_input_tokens AS input_tokens, llm_output_tokens AS output_tokens,
               toString(tool_name) AS tool_name, tool_call_id, tool_arguments, tool_result
        FROM $db.spans
        WHERE rollout_id = {rollout_id:String}
        ORDER BY attempt, start_time, producer_id, sequence
        LIMIT 1 BY event_id
        """,
        parameters,
    )
    rewards = reader.rows(
        """
        SELECT attempt, toString(name) AS name, value, toString(source) AS source, span_id,
               comment, toDateTime64(emitted_at, 3, 'UTC') AS emitted_at
        FROM $db.rewards
        WHERE rollout_id = {rollout_id:String}
        ORDER BY attempt, emitted_at, producer_id, sequence
        LIMIT 1 BY event_id
        """,
        parameters,
    )
    feedback = reader.rows(
        """
        SELECT attempt, thumbs_up, toString(source) AS source, span_id, correction, comment,
               toDateTime64(emitted_at, 3, 'UTC') AS emitted_at
        FROM $db.feedback
        WHERE rollout_id = {rollout_id:String}
        ORDER BY attempt, emitted_at, producer_id, sequence
        LIMIT 1 BY event_id
        """,
        parameters,
    )
    episodes = reader.rows(
        """
        SELECT attempt, revision, scored, reward, rewards,
               toString(credit_assignment) AS credit_assignment
        FROM $db.episodes
        WHERE rollout_id = {rollout_id:String}
        ORDER BY attempt, revision DESC
        LIMIT 1 BY attempt
        """,
        parameters,
    )
    return RolloutDetail(
        attempts=[_rollout_row(row) for row in attempts],
        spans=[SpanRow(**row) for row in spans],
        rewards=[RewardRow(**row) for row in rewards],
        episodes=[
            EpisodeInfo(**(row | {"rewards": dict(row["rewards"])}))  # Maps arrive as pairs
            for row in episodes
        ],
        feedback=[FeedbackRow(**row) for row in feedback],
    )
