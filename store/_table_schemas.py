"""Arrow schemas of the store's tables (`TABLES`).

They mirror the DDL in `schemas/clickhouse/`; `tests/integration/test_store.py`
(`test_arrow_schemas_match_the_ddl`) keeps the two in lock-step (names, order, nullability).
"""

from __future__ import annotations

import pyarrow as pa

_NS = pa.timestamp("ns", tz="UTC")
_MS = pa.timestamp("ms", tz="UTC")
_US = pa.timestamp("us", tz="UTC")
_STR = pa.string()


def _strings() -> pa.DataType:
    return pa.map_(pa.string(), pa.string())


_META: list[pa.Field] = [
    pa.field("event_id", _STR, nullable=False),
    pa.field("rollout_id", _STR, nullable=False),
    pa.field("attempt", pa.uint32(), nullable=False),
    pa.field("producer_id", _STR, nullable=False),
    pa.field("sequence", pa.uint64(), nullable=False),
    pa.field("agent_name", _STR, nullable=False),
    pa.field("model_version", _STR, nullable=False),
    pa.field("resources_version", _STR, nullable=False),
    pa.field("emitted_at", _NS, nullable=False),
]

_SOURCE: list[pa.Field] = [
    pa.field("source_partition", pa.int32(), nullable=False),
    pa.field("source_offset", pa.int64(), nullable=False),
]
"""Where a raw event was read from: its Kafka partition and offset (-1 when not from Kafka)."""


def _required(name: str, kind: pa.DataType) -> pa.Field:
    return pa.field(name, kind, nullable=False)


def _optional(name: str, kind: pa.DataType) -> pa.Field:
    return pa.field(name, kind, nullable=True)


_ARM = pa.struct(
    [
        pa.field(name, kind, nullable=False)
        for name, kind in [("version_id", _STR), ("episodes", pa.uint64())]
        + [(name, pa.float64()) for name in ("mean_reward", "reward_lower", "reward_upper",
                                             "error_rate", "latency_mean_s", "tokens_mean")]
    ]
)  # fmt: skip
"""One arm's evidence in a release decision (`ArmEvidence`)."""

TABLES: dict[str, pa.Schema] = {
    "spans": pa.schema(
        [
            *_META,
            _required("trace_id", _STR),
            _required("span_id", _STR),
            _optional("parent_span_id", _STR),
            _required("name", _STR),
            _required("kind", _STR),
            _required("start_time", _NS),
            _required("end_time", _NS),
            _required("status_code", _STR),
            _required("status_message", _STR),
            _required("attr_strings", _strings()),
            _required("attr_ints", pa.map_(pa.string(), pa.int64())),
            _required("attr_doubles", pa.map_(pa.string(), pa.float64())),
            _required("attr_bools", pa.map_(pa.string(), pa.bool_())),
            _required("events", _STR),
            _required("llm_operation", _STR),
            _required("llm_provider", _STR),
            _required("llm_request_model", _STR),
            _optional("llm_response_model", _STR),
            _optional("llm_response_id", _STR),
            _optional("llm_temperature", pa.float64()),
            _optional("llm_max_tokens", pa.int64()),
            _optional("llm_input_tokens", pa.int64()),
            _optional("llm_output_tokens", pa.int64()),
            _required("llm_finish_reasons", pa.list_(_STR)),
            _required("llm_input_messages", _STR),
            _required("llm_output_messages", _STR),
            _required("llm_tool_definitions", _STR),
            _required("llm_streamed", pa.bool_()),
            _required("llm_prompt_token_ids", pa.list_(pa.uint32())),
            _required("llm_response_token_ids", pa.list_(pa.uint32())),
            _required("llm_response_logprobs", pa.list_(pa.float32())),
            _required("tool_name", _STR),
            _optional("tool_call_id", _STR),
            _required("tool_type", _STR),
            _required("tool_arguments", _STR),
            _required("tool_result", _STR),
            *_SOURCE,
        ]
    ),
    "rewards": pa.schema(
        [
            *_META,
            _required("name", _STR),
            _required("value", pa.float64()),
            _required("dimensions", pa.map_(pa.string(), pa.float64())),
            _required("source", _STR),
            _optional("span_id", _STR),
            _optional("comment", _STR),
            *_SOURCE,
        ]
    ),
    "rollouts": pa.schema(
        [
            *_META,
            _required("phase", _STR),
            _required("task_id", _STR),
            _required("trace_id", _STR),
            _optional("input", _STR),
            _optional("status", _STR),
            _optional("error", _STR),
            _required("metadata", _strings()),
            *_SOURCE,
        ]
    ),
    "feedback": pa.schema(
        [
            *_META,
            _required("thumbs_up", pa.bool_()),
            _required("source", _STR),
            _optional("span_id", _STR),
            _optional("correction", _STR),
            _optional("comment", _STR),
            *_SOURCE,
        ]
    ),
    "dead_letters": pa.schema(
        [
            _required("received_at", _MS),
            _required("topic", _STR),
            _required("partition", pa.uint32()),
            _required("offset", pa.uint64()),
            _required("key", pa.binary()),
            _required("value", pa.binary()),
            _required("problem", _STR),
            _required("detail", _STR),
        ]
    ),
    "episodes": pa.schema(
        [
            _required("rollout_id", _STR),
            _required("attempt", pa.uint32()),
            _required("revision", pa.uint32()),
            _required("agent_name", _STR),
            _required("task_id", _STR),
            _required("model_version", _STR),
            _required("resources_version", _STR),
            _required("status", _STR),
            _required("scored", pa.bool_()),
            _optional("reward", pa.float64()),
            _required("rewards", pa.map_(pa.string(), pa.float64())),
            _required("credit_assignment", _STR),
            _required("started_at", _NS),
            _required("finished_at", _NS),
            _required("assembled_at", _MS),
            _required("num_spans", pa.uint32()),
            _required("num_llm_calls", pa.uint32()),
            _required("num_tool_calls", pa.uint32()),
            _required("num_tool_errors", pa.uint32()),
            _optional("input", _STR),
            _optional("error", _STR),
            _required("num_events", pa.uint32()),
        ]
    ),
    "triplets": pa.schema(
        [
            _required("rollout_id", _STR),
            _required("attempt", pa.uint32()),
            _required("revision", pa.uint32()),
            _required("step", pa.uint32()),
            _required("span_id", _STR),
            _required("agent_name", _STR),
            _required("task_id", _STR),
            _required("model_version", _STR),
            _required("resources_version", _STR),
            _required("finished_at", _NS),
            _required("request_model", _STR),
            _required("prompt", _STR),
            _required("response", _STR),
            _required("prompt_token_ids", pa.list_(pa.uint32())),
            _required("response_token_ids", pa.list_(pa.uint32())),
            _required("response_logprobs", pa.list_(pa.float32())),
            _optional("reward", pa.float64()),
            _optional("advantage", pa.float64()),
        ]
    ),
    "versions": pa.schema(
        [
            _required("version_id", _STR),
            _required("kind", _STR),
            _optional("target_agent", _STR),
            _optional("parent_version", _STR),
            _required("algorithm", _STR),
            _optional("window_id", _STR),
            _optional("dataset_hash", _STR),
            _optional("artifact_uri", _STR),
            _optional("model_name", _STR),
            _required("prompt_templates", _strings()),
            _required("metrics", pa.map_(pa.string(), pa.float64())),
            _required("recipe", _strings()),
            _required("traffic_share", pa.float64()),
            _required("published_at", _NS),
            _required("event_id", _STR),
        ]
    ),
    "release_decisions": pa.schema(
        [
            _required("event_id", _STR),
            _required("decided_at", _NS),
            _optional("target_agent", _STR),
            _required("kind", _STR),
            _required("version_id", _STR),
            _optional("to_version", _STR),
            _required("action", _STR),
            _required("traffic_share", pa.float64()),
            _required("automatic", pa.bool_()),
            _required("reason", _STR),
            _required("rule", _STR),
            _required("arms", pa.list_(_ARM)),
        ]
    ),
    "serving_acks": pa.schema(
        [
            _required("event_id", _STR),
            _required("acked_at", _NS),
            _required("replica_id", _STR),
            _required("pool", _STR),
            _required("version_id", _STR),
            _required("model_name", _STR),
            _required("status", _STR),
            _optional("detail", _STR),
        ]
    ),
    "training_runs": pa.schema(
        [
            _required("run_id", _STR),
            _required("agent_name", _STR),
            _required("algorithm", _STR),
            _required("window_id", _STR),
            _required("dataset_hash", _STR),
            _required("episodes", pa.uint32()),
            _optional("parent_version", _STR),
            _required("candidate_version", _STR),
            _required("outcome", _STR),
            _optional("reason", _STR),
            _required("metrics", pa.map_(pa.string(), pa.float64())),
            _required("started_at", _MS),
            _required("finished_at", _MS),
        ]
    ),
    "training_windows": pa.schema(
        [
            _required("window_id", _STR),
            _required("agent_name", _STR),
            _required("algorithm", _STR),
            _optional("since", _US),
            _required("until", _US),
            _required("episodes", pa.uint32()),
            _required("mean_reward", pa.float64()),
            _required("trigger", _STR),
            _required("job_name", _STR),
            _required("state", _STR),
            _optional("reason", _STR),
            _required("recorded_at", _MS),
        ]
    ),
}
