"""Pydantic mirrors of the Avro contracts in `avro/*.avsc`.

The `.avsc` files are the source of truth; `tests/unit/test_schema_lockstep.py` fails when a
field, type, default or enum symbol here drifts from them. Models are frozen: an event is a
fact, never edited after it was emitted.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

EventType = Literal[
    "span", "reward", "rollout", "version", "decision", "serving_ack", "episode", "feedback"
]
SpanKind = Literal["INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER"]
StatusCode = Literal["UNSET", "OK", "ERROR"]
RewardSource = Literal["programmatic", "human", "judge"]
FeedbackSource = Literal["human", "judge"]
RolloutPhase = Literal["started", "finished"]
RolloutStatus = Literal["succeeded", "failed", "cancelled", "timeout"]
VersionKind = Literal["model", "prompt"]
Algorithm = Literal["base", "rl", "apo", "sft", "manual", "dpo", "kto"]
EpisodeStatus = Literal["succeeded", "failed", "cancelled", "timeout"]
ReleaseAction = Literal["promote", "hold", "rollback"]
ServingStatus = Literal["loaded", "failed", "unloaded"]

TraceId = Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
"""A reward's value: NaN or an infinity would poison every mean and gradient built on it."""
UInt32 = Annotated[int, Field(ge=0, le=2**32 - 1)]
"""Attempts and token ids: the store keeps them as UInt32, so an event that decodes can be
stored (an Avro long can hold more)."""
SpanId = Annotated[str, Field(pattern=r"^[0-9a-f]{16}$")]


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


USER_ID_LABEL = "user_id"
"""The `RolloutEvent.metadata` label naming the end user a rollout acted for: what forgetting
a user (`LightningStore.forget_user`) finds the user's rollouts by."""

VERSION_SEPARATOR = "+"
"""Joins the model versions of a rollout whose calls several versions served (`v3+v4`): a
rollout's end, its rewards and its episode carry them all when it straddled a swap."""


class EventMeta(_Record):
    """Envelope of every event; see `event_meta.avsc` for each field's contract."""

    event_id: str = Field(min_length=1)
    rollout_id: str = Field(min_length=1)
    attempt: UInt32 = Field(ge=1)
    producer_id: str = Field(min_length=1)
    sequence: int = Field(ge=0)
    agent_name: str = ""
    model_version: str = ""
    resources_version: str = ""
    emitted_at_unix_nano: int


class SpanStatus(_Record):
    code: StatusCode = "UNSET"
    message: str = ""


class Attributes(_Record):
    """OTel attributes, split by value type; structured values are JSON strings."""

    strings: dict[str, str] = Field(default_factory=dict)
    ints: dict[str, int] = Field(default_factory=dict)
    doubles: dict[str, float] = Field(default_factory=dict)
    bools: dict[str, bool] = Field(default_factory=dict)


class SpanEvent(_Record):
    name: str
    time_unix_nano: int
    attributes: Attributes = Field(default_factory=Attributes)


class LlmCall(_Record):
    """GenAI semantic conventions of an inference span, plus the tokens RL needs."""

    operation_name: str = "chat"
    provider_name: str = "openai"
    request_model: str
    response_model: str | None = None
    response_id: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    finish_reasons: list[str] = Field(default_factory=list)
    input_messages: str = "[]"
    output_messages: str = "[]"
    tool_definitions: str = "[]"
    streamed: bool = False
    prompt_token_ids: list[UInt32] = Field(default_factory=list)
    response_token_ids: list[UInt32] = Field(default_factory=list)
    response_logprobs: list[float] = Field(default_factory=list)


class ToolCall(_Record):
    """GenAI semantic conventions of an execute_tool span."""

    name: str
    call_id: str | None = None
    type: str = "function"
    arguments: str = "{}"
    result: str = "null"


class Span(_Record):
    """One OpenTelemetry span: an LLM call, a tool call, a custom step or the rollout."""

    event_type: ClassVar[EventType] = "span"

    meta: EventMeta
    trace_id: TraceId
    span_id: SpanId
    parent_span_id: SpanId | None = None
    name: str
    kind: SpanKind = "INTERNAL"
    start_time_unix_nano: int = Field(ge=0)
    end_time_unix_nano: int = Field(ge=0)
    status: SpanStatus = Field(default_factory=SpanStatus)
    attributes: Attributes = Field(default_factory=Attributes)
    events: list[SpanEvent] = Field(default_factory=list)
    llm: LlmCall | None = None
    tool: ToolCall | None = None

    @model_validator(mode="after")
    def _ends_after_it_starts(self) -> Span:
        if self.end_time_unix_nano < self.start_time_unix_nano:
            raise ValueError(
                f"span ends before it starts ({self.end_time_unix_nano} < "
                f"{self.start_time_unix_nano} ns)"
            )
        return self


class Reward(_Record):
    """A reward for a rollout, or for one of its spans when `span_id` is set."""

    event_type: ClassVar[EventType] = "reward"

    meta: EventMeta
    name: str = "reward"
    value: FiniteFloat
    dimensions: dict[str, FiniteFloat] = Field(default_factory=dict)
    source: RewardSource = "programmatic"
    span_id: SpanId | None = None
    comment: str | None = None


class RolloutEvent(_Record):
    """Rollout lifecycle: `started`, then `finished` with a status."""

    event_type: ClassVar[EventType] = "rollout"

    meta: EventMeta
    phase: RolloutPhase
    task_id: str = ""
    trace_id: TraceId
    input: str | None = None
    status: RolloutStatus | None = None
    error: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)


class VersionEvent(_Record):
    """A model or prompt version published on the control topic."""

    event_type: ClassVar[EventType] = "version"

    meta: EventMeta
    version_id: str = Field(min_length=1)
    kind: VersionKind
    target_agent: str | None = None
    parent_version: str | None = None
    algorithm: Algorithm = "manual"
    window_id: str | None = None
    dataset_hash: str | None = None
    artifact_uri: str | None = None
    model_name: str | None = None
    prompt_templates: dict[str, str] = Field(default_factory=dict)
    metrics: dict[str, float] = Field(default_factory=dict)
    recipe: dict[str, str] = Field(default_factory=dict)
    """How the version was trained beyond its `algorithm` (e.g. the `pairing` rule of a
    DPO or KTO version). Old writers' events read as {}."""
    traffic_share: float = Field(default=1.0, gt=0.0, le=1.0, allow_inf_nan=False)
    """The share of the target's rollouts routed to this version: 1.0 switches them all;
    below, a canary beside the version in force until a `ReleaseDecision` promotes or rolls
    it back (docs/versions.md). Old writers' events read as 1.0."""

    @property
    def is_canary(self) -> bool:
        return self.traffic_share < 1.0


class ArmEvidence(_Record):
    """What production said of one arm of a canary, over the rollouts that ran while both
    arms did: scored episodes, mean reward with its anytime-valid interval, and the
    guardrails' measures."""

    version_id: str
    episodes: int = Field(ge=0)
    mean_reward: FiniteFloat
    reward_lower: float
    reward_upper: float
    error_rate: FiniteFloat = Field(ge=0.0, le=1.0)
    latency_mean_s: FiniteFloat = Field(ge=0.0)
    tokens_mean: FiniteFloat = Field(ge=0.0)


class ReleaseDecision(_Record):
    """Promote a canary to every rollout, hold it, or roll back to the version it replaced;
    on the control topic, applied by agents like a version, kept in the store with its
    evidence (`arms`: the canary first)."""

    event_type: ClassVar[EventType] = "decision"

    meta: EventMeta
    target_agent: str | None = None
    kind: VersionKind
    version_id: str = Field(min_length=1)
    to_version: str | None = None
    """What the target runs afterwards: the promoted version, the one rolled back to (None:
    the base deployment, the agents' settings). None on hold."""
    action: ReleaseAction
    traffic_share: float = Field(ge=0.0, le=1.0, allow_inf_nan=False)
    automatic: bool = False
    reason: str = ""
    rule: str = ""
    arms: list[ArmEvidence] = Field(default_factory=list)


class ServingAck(_Record):
    """A serving replica loaded a model version (or failed to, or unloaded it)."""

    event_type: ClassVar[EventType] = "serving_ack"

    meta: EventMeta
    replica_id: str = Field(min_length=1)
    pool: str = "default"
    version_id: str = Field(min_length=1)
    model_name: str = Field(min_length=1)
    status: ServingStatus
    detail: str | None = None


class EpisodeCompleted(_Record):
    """An episode revision written to the store; what the scheduler counts. The envelope's
    agent, model version and rollout are the episode's."""

    event_type: ClassVar[EventType] = "episode"

    meta: EventMeta
    revision: int = Field(ge=0)
    task_id: str = ""
    status: EpisodeStatus
    reward: float
    """The episode's reward; 0.0 when it is unscored. A double rather than a nullable one:
    the evolution rules allow no type change (an old reader would fail on a null), so an
    unscored episode says so in `scored` and its reward reads 0.0 to old readers."""
    num_llm_calls: int = 0
    finished_at_unix_nano: int
    scored: bool = True
    """False when no reward of the primary name reached the episode. Old writers' events
    read as True."""

    @model_validator(mode="after")
    def _unscored_reads_zero(self) -> EpisodeCompleted:
        if not self.scored and self.reward != 0.0:
            raise ValueError(f"an unscored episode's reward is 0.0, not {self.reward}")
        return self


class Feedback(_Record):
    """Thumbs up or down on a rollout, or on one of its LLM calls when `span_id` is set,
    with an optional corrected answer: what preference training (DPO, KTO) learns from."""

    event_type: ClassVar[EventType] = "feedback"

    meta: EventMeta
    thumbs_up: bool
    source: FeedbackSource = "human"
    span_id: SpanId | None = None
    correction: str | None = Field(default=None, min_length=1)
    """The answer the rated call should have given; never empty (None when not given)."""
    comment: str | None = None


Event = (
    Span
    | Reward
    | RolloutEvent
    | VersionEvent
    | ReleaseDecision
    | ServingAck
    | EpisodeCompleted
    | Feedback
)
ControlEvent = VersionEvent | ReleaseDecision | ServingAck
"""What the control topic carries."""
EVENT_MODELS: dict[EventType, type[Event]] = {
    "span": Span,
    "reward": Reward,
    "rollout": RolloutEvent,
    "version": VersionEvent,
    "decision": ReleaseDecision,
    "serving_ack": ServingAck,
    "episode": EpisodeCompleted,
    "feedback": Feedback,
}
