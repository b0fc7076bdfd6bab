"""Arrow schemas of the store's tables, and events turned into Arrow columns.

The schemas mirror the DDL in `schemas/clickhouse/`; `tests/integration/test_store.py`
(`test_arrow_schemas_match_the_ddl`) keeps the two in lock-step (names, order, nullability).
Events are written from their fields (`Decoded.fields`: what Avro read, before any model was
built), one row dict each, converted by Arrow in one call per batch.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pyarrow as pa

from fulmen.schemas import (
    Event,
    Feedback,
    ReleaseDecision,
    Reward,
    RolloutEvent,
    ServingAck,
    Span,
    VersionEvent,
)

Fields = Mapping[str, Any]
"""An event's fields as Avro reads them (`Decoded.fields`), the shape of its `model_dump()`."""

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


def _meta_columns(meta: Fields) -> dict[str, Any]:
    return {
        "event_id": meta["event_id"],
        "rollout_id": meta["rollout_id"],
        "attempt": meta["attempt"],
        "producer_id": meta["producer_id"],
        "sequence": meta["sequence"],
        "agent_name": meta["agent_name"],
        "model_version": meta["model_version"],
        "resources_version": meta["resources_version"],
        "emitted_at": meta["emitted_at_unix_nano"],
    }


def _span_row(span: Fields) -> dict[str, Any]:
    llm, tool, status, attributes = span["llm"], span["tool"], span["status"], span["attributes"]
    return {
        **_meta_columns(span["meta"]),
        "trace_id": span["trace_id"],
        "span_id": span["span_id"],
        "parent_span_id": span["parent_span_id"],
        "name": span["name"],
        "kind": span["kind"],
        "start_time": span["start_time_unix_nano"],
        "end_time": span["end_time_unix_nano"],
        "status_code": status["code"],
        "status_message": status["message"],
        "attr_strings": attributes["strings"],
        "attr_ints": attributes["ints"],
        "attr_doubles": attributes["doubles"],
        "attr_bools": attributes["bools"],
        "events": json.dumps(span["events"]) if span["events"] else "[]",
        **(_llm_columns(llm) if llm is not None else _NO_LLM),
        **(_tool_columns(tool) if tool is not None else _NO_TOOL),
    }


def _llm_columns(llm: Fields) -> dict[str, Any]:
    return {
        "llm_operation": llm["operation_name"],
        "llm_provider": llm["provider_name"],
        "llm_request_model": llm["request_model"],
        "llm_response_model": llm["response_model"],
        "llm_response_id": llm["response_id"],
        "llm_temperature": llm["temperature"],
        "llm_max_tokens": llm["max_tokens"],
        "llm_input_tokens": llm["input_tokens"],
        "llm_output_tokens": llm["output_tokens"],
        "llm_finish_reasons": llm["finish_reasons"],
        "llm_input_messages": llm["input_messages"],
        "llm_output_messages": llm["output_messages"],
        "llm_tool_definitions": llm["tool_definitions"],
        "llm_streamed": llm["streamed"],
        "llm_prompt_token_ids": llm["prompt_token_ids"],
        "llm_response_token_ids": llm["response_token_ids"],
        "llm_response_logprobs": llm["response_logprobs"],
    }


_NO_LLM: dict[str, Any] = {
    "llm_operation": "",
    "llm_provider": "",
    "llm_request_model": "",
    "llm_response_model": None,
    "llm_response_id": None,
    "llm_temperature": None,
    "llm_max_tokens": None,
    "llm_input_tokens": None,
    "llm_output_tokens": None,
    "llm_finish_reasons": [],
    "llm_input_messages": "",
    "llm_output_messages": "",
    "llm_tool_definitions": "",
    "llm_streamed": False,
    "llm_prompt_token_ids": [],
    "llm_response_token_ids": [],
    "llm_response_logprobs": [],
}


def _tool_columns(tool: Fields) -> dict[str, Any]:
    return {
        "tool_name": tool["name"],
        "tool_call_id": tool["call_id"],
        "tool_type": tool["type"],
        "tool_arguments": tool["arguments"],
        "tool_result": tool["result"],
    }


_NO_TOOL: dict[str, Any] = {
    "tool_name": "",
    "tool_call_id": None,
    "tool_type": "",
    "tool_arguments": "",
    "tool_result": "",
}


def _reward_row(reward: Fields) -> dict[str, Any]:
    return {
        **_meta_columns(reward["meta"]),
        "name": reward["name"],
        "value": reward["value"],
        "dimensions": reward["dimensions"],
        "source": reward["source"],
        "span_id": reward["span_id"],
        "comment": reward["comment"],
    }


def _rollout_row(event: Fields) -> dict[str, Any]:
    return {
        **_meta_columns(event["meta"]),
        "phase": event["phase"],
        "task_id": event["task_id"],
        "trace_id": event["trace_id"],
        "input": event["input"],
        "status": event["status"],
        "error": event["error"],
        "metadata": event["metadata"],
    }


def _feedback_row(event: Fields) -> dict[str, Any]:
    return {
        **_meta_columns(event["meta"]),
        "thumbs_up": event["thumbs_up"],
        "source": event["source"],
        "span_id": event["span_id"],
        "correction": event["correction"],
        "comment": event["comment"],
    }


def _version_row(event: Fields) -> dict[str, Any]:
    return {
        "version_id": event["version_id"],
        "kind": event["kind"],
        "target_agent": event["target_agent"],
        "parent_version": event["parent_version"],
        "algorithm": event["algorithm"],
        "window_id": event["window_id"],
        "dataset_hash": event["dataset_hash"],
        "artifact_uri": event["artifact_uri"],
        "model_name": event["model_name"],
        "prompt_templates": event["prompt_templates"],
        "metrics": event["metrics"],
        "recipe": event["recipe"],
        "traffic_share": event["traffic_share"],
        "published_at": event["meta"]["emitted_at_unix_nano"],
        "event_id": event["meta"]["event_id"],
    }


def _decision_row(event: Fields) -> dict[str, Any]:
    return {
        "event_id": event["meta"]["event_id"],
        "decided_at": event["meta"]["emitted_at_unix_nano"],
        **{key: event[key] for key in _DECISION_COLUMNS},
    }


def _serving_ack_row(event: Fields) -> dict[str, Any]:
    return {
        "event_id": event["meta"]["event_id"],
        "acked_at": event["meta"]["emitted_at_unix_nano"],
        **{key: event[key] for key in _ACK_COLUMNS},
    }


_DECISION_COLUMNS = ("target_agent", "kind", "version_id", "to_version", "action",
                     "traffic_share", "automatic", "reason", "rule", "arms")  # fmt: skip
_ACK_COLUMNS = ("replica_id", "pool", "version_id", "model_name", "status", "detail")


Source = tuple[int, int]
"""(Kafka partition, offset) of a raw event."""

EVENT_TABLES: dict[type[Event], str] = {
    Span: "spans",
    Reward: "rewards",
    RolloutEvent: "rollouts",
    VersionEvent: "versions",
    ReleaseDecision: "release_decisions",
    ServingAck: "serving_acks",
    Feedback: "feedback",
}
"""The table each type of event is written to."""


_ROWS: dict[str, Callable[[Fields], dict[str, Any]]] = {
    "spans": _span_row,
    "rewards": _reward_row,
    "rollouts": _rollout_row,
    "versions": _version_row,
    "release_decisions": _decision_row,
    "serving_acks": _serving_ack_row,
    "feedback": _feedback_row,
}


def events_table(
    table: str, events: Sequence[Fields], sources: Sequence[Source] | None = None
) -> pa.Table:
    """Events of one table's type (`EVENT_TABLES`), as their fields (`Decoded.fields`, or a
    model's `model_dump()`), in that table's columns; `sources` gives each one's Kafka
    (partition, offset) where the table records it (else -1, -1)."""
    schema = TABLES[table]
    rows = [_ROWS[table](fields) for fields in events]
    if "source_offset" in schema.names:
        where = sources if sources is not None else [(-1, -1)] * len(rows)
        for row, (partition, offset) in zip(rows, where, strict=True):
            row["source_partition"] = partition
            row["source_offset"] = offset
    return pa.Table.from_pylist(rows, schema=schema)
