"""The feedback contract: `feedback.avsc` on the wire and through its evolution rules, the
version event's new `recipe` and algorithms read by older readers, and what
`fulmen.emit_feedback` refuses."""

from __future__ import annotations

import copy
import io
from typing import Any

import pytest
from fastavro import schemaless_reader, schemaless_writer
from pydantic import ValidationError

import fulmen
from fulmen.producers import InProcessBus
from fulmen.producers._feedback import feedback_event
from fulmen.schemas import Feedback, SingleObjectCodec, VersionEvent, load_schema_json, schema_of
from fulmen.schemas._avro import raw_schema
from tests.support.events import meta
from tests.support.sdk import emitted

CODEC = SingleObjectCodec()


def _feedback(**overrides: Any) -> Feedback:
    fields: dict[str, Any] = {
        "meta": meta("r7"), "thumbs_up": False, "source": "judge",
        "span_id": "00f067aa0ba902b7", "correction": "42", "comment": "off by one",
    }  # fmt: skip
    return Feedback(**(fields | overrides))


def test_feedback_goes_over_the_wire_and_back() -> None:
    event = _feedback()
    assert CODEC.decode(CODEC.encode(event, topic="fulmen.feedback"), topic="t") == event
    minimal = Feedback(meta=meta("r8"), thumbs_up=True)
    decoded = CODEC.decode(CODEC.encode(minimal, topic="fulmen.feedback"), topic="t")
    assert decoded == minimal
    assert (decoded.source, decoded.span_id, decoded.correction) == ("human", None, None)


def _written_by(schema: dict[str, Any], record: dict[str, Any]) -> bytes:
    writer = load_schema_json(schema, event_type="feedback")
    body = io.BytesIO()
    body.write(b"\xc3\x01" + writer.fingerprint)
    schemaless_writer(body, writer.parsed, record)
    return body.getvalue()


def test_feedback_of_a_newer_writer_is_read_once_its_schema_is_known() -> None:
    newer = copy.deepcopy(raw_schema("feedback"))
    newer["fields"].append({"name": "rater_id", "type": ["null", "string"], "default": None})
    newer["fields"] = [f for f in newer["fields"] if f["name"] != "comment"]
    record = _feedback().model_dump() | {"rater_id": "u-1"}
    del record["comment"]

    event = SingleObjectCodec(writer_schemas=(load_schema_json(newer, event_type="feedback"),))
    decoded = event.decode(_written_by(newer, record), topic="t")
    assert decoded == _feedback(meta=decoded.meta, comment=None)  # removed: the default


def test_an_unknown_feedback_source_is_refused_not_misread() -> None:
    with pytest.raises(ValidationError):
        _feedback(source="programmatic")  # a reward's source, not feedback's
    with pytest.raises(ValidationError):
        _feedback(correction="")


def _version_schema_before_preferences() -> dict[str, Any]:
    """`version_event.avsc` before `recipe` and the `dpo`/`kto` symbols."""
    document = copy.deepcopy(raw_schema("version"))
    document["fields"] = [f for f in document["fields"] if f["name"] != "recipe"]
    for field in document["fields"]:
        if field["name"] == "algorithm":
            field["type"]["symbols"] = ["base", "rl", "apo", "sft", "manual"]
    return document


def _version(**overrides: Any) -> VersionEvent:
    fields: dict[str, Any] = {
        "meta": meta("run-1"), "version_id": "dpo-1", "kind": "model", "algorithm": "dpo",
        "recipe": {"pairing": "rewards(min_gap=0.5, max_per_task=16)"},
    }  # fmt: skip
    return VersionEvent(**(fields | overrides))


def test_readers_before_preferences_read_a_dpo_version_as_manual_without_recipe() -> None:
    older = load_schema_json(_version_schema_before_preferences(), event_type="version")
    data = CODEC.encode(_version(), topic="fulmen.control")
    record = schemaless_reader(io.BytesIO(data[10:]), schema_of("version").parsed, older.parsed)
    assert record["algorithm"] == "manual"  # rule 4: an unknown symbol reads the default
    assert "recipe" not in record


def test_versions_of_writers_before_preferences_read_with_an_empty_recipe() -> None:
    older = load_schema_json(_version_schema_before_preferences(), event_type="version")
    written = _version(algorithm="sft", recipe={})
    record = written.model_dump()
    del record["recipe"]
    body = io.BytesIO()
    body.write(b"\xc3\x01" + older.fingerprint)
    schemaless_writer(body, older.parsed, record)

    decoded = SingleObjectCodec(writer_schemas=(older,)).decode(body.getvalue(), topic="t")
    assert decoded == written


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"thumb": "meh"}, "thumb must be 'up' or 'down'"),
        ({"thumb": "up", "source": "programmatic"}, "source must be 'human' or 'judge'"),
        ({"thumb": "up", "span_id": "SPAN"}, "span_id must be 16 lower-case hex"),
        ({"thumb": "down", "correction": "  "}, "correction is blank"),
        ({"thumb": "up", "rollout_id": "", "attempt": 1}, "rollout_id is empty"),
        ({"thumb": "up", "rollout_id": "r1", "attempt": 0}, "attempt must be 1 or more"),
    ],
)
def test_bad_feedback_is_a_clear_value_error(
    sdk_bus: InProcessBus, arguments: dict[str, Any], message: str
) -> None:
    arguments.setdefault("rollout_id", "r1")
    with pytest.raises(ValueError, match=message):
        fulmen.emit_feedback(**arguments)
    assert emitted(sdk_bus) == []


def test_feedback_rates_the_rollout_in_progress_or_a_past_one(sdk_bus: InProcessBus) -> None:
    @fulmen.rollout(task_id=lambda: "t1")
    def answer() -> str:
        fulmen.emit_feedback("down", correction="4", source="judge")
        return "5"

    answer()
    fulmen.emit_feedback("up", rollout_id="earlier", attempt=2, comment="thanks")
    with pytest.raises(fulmen.NoActiveRollout):
        fulmen.emit_feedback("up")

    feedback = [e for e in emitted(sdk_bus) if isinstance(e, Feedback)]
    assert [(f.thumbs_up, f.correction, f.source) for f in feedback] == [
        (False, "4", "judge"),
        (True, None, "human"),
    ]
    assert feedback[1].meta.rollout_id == "earlier"
    assert feedback[1].meta.attempt == 2
    assert feedback[0].meta.rollout_id != "earlier"


def test_the_gateway_builds_the_same_event() -> None:
    event = feedback_event(meta("r1"), "up", comment="great")
    assert (event.thumbs_up, event.comment, event.source) == (True, "great", "human")
