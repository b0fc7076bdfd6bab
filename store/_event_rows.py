"""Events turned into Arrow columns of their table (`events_table`).

Events are written from their fields (`Decoded.fields`: what Avro read, before any model was
built), one row dict each, converted by Arrow in one call per batch, under the table's schema
(`TABLES`).
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
from fulmen.store._table_schemas import TABLES

Fields = Mapping[str, Any]
"""An event's fields as Avro reads them (`Decoded.fields`), the shape of its `model_dump()`."""


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
