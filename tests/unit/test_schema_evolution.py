"""The evolution rules of docs/schemas.md, exercised: a reader of the current contracts reads
events of a newer writer and the reverse, once the other side's schema is known."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from fulmen.schemas import DecodeError, SingleObjectCodec, load_schema_json, schema_of
from fulmen.schemas._avro import raw_schema
from tests.support.events import llm_span


def _newer_span_schema() -> dict[str, Any]:
    """A compatible next version: one field added with a default, one optional field removed."""
    document = copy.deepcopy(raw_schema("span"))
    document["fields"].append({"name": "sampling_seed", "type": ["null", "long"], "default": None})
    document["fields"] = [f for f in document["fields"] if f["name"] != "tool"]
    return document


def test_current_reader_reads_a_newer_writer() -> None:
    newer = load_schema_json(_newer_span_schema(), event_type="span")
    import io

    from fastavro import schemaless_writer

    record = llm_span().model_dump()
    del record["tool"]
    record["sampling_seed"] = 42
    body = io.BytesIO()
    body.write(b"\xc3\x01" + newer.fingerprint)
    schemaless_writer(body, newer.parsed, record)

    with pytest.raises(DecodeError) as raised:
        SingleObjectCodec().decode(body.getvalue(), topic="t")
    assert raised.value.problem == "unknown_fingerprint"  # unknown until the schema is shipped

    event = SingleObjectCodec(writer_schemas=(newer,)).decode(body.getvalue(), topic="t")
    assert event == llm_span().model_copy(update={"meta": event.meta})
    assert event.tool is None  # removed by the writer: the reader's default


def test_newer_reader_reads_the_current_writer() -> None:
    import io

    from fastavro import schemaless_reader

    newer = load_schema_json(_newer_span_schema(), event_type="span")
    data = SingleObjectCodec().encode(llm_span(), topic="t")
    record = schemaless_reader(io.BytesIO(data[10:]), schema_of("span").parsed, newer.parsed)
    assert record["sampling_seed"] is None
    assert "tool" not in record
    assert record["llm"]["response_token_ids"] == [19, 20, 2]


def test_an_incompatible_change_is_caught() -> None:
    """Adding a field without a default breaks old writers: resolution must fail loudly."""
    document = copy.deepcopy(raw_schema("span"))
    document["fields"].append({"name": "required_new", "type": "string"})
    stricter = load_schema_json(document, event_type="span")
    import io

    from fastavro import schemaless_reader

    data = SingleObjectCodec().encode(llm_span(), topic="t")
    with pytest.raises(Exception, match="required_new"):
        schemaless_reader(io.BytesIO(data[10:]), schema_of("span").parsed, stricter.parsed)


def _episode(*, scored: bool) -> Any:
    from fulmen.schemas import EpisodeCompleted
    from tests.support.events import NOW_NS, meta

    return EpisodeCompleted(
        meta=meta("r9", 3),
        revision=0,
        task_id="2+2",
        status="succeeded",
        reward=0.75 if scored else 0.0,
        num_llm_calls=2,
        finished_at_unix_nano=NOW_NS,
        scored=scored,
    )


def _episode_schema_before_scored() -> dict[str, Any]:
    """`episode_completed.avsc` as it was before `scored` (rule 1: it came with a default)."""
    document = copy.deepcopy(raw_schema("episode"))
    document["fields"] = [f for f in document["fields"] if f["name"] != "scored"]
    return document


def test_episodes_of_writers_before_scored_read_as_scored() -> None:
    import io

    from fastavro import schemaless_writer

    older = load_schema_json(_episode_schema_before_scored(), event_type="episode")
    written = _episode(scored=True)
    record = written.model_dump()
    del record["scored"]
    body = io.BytesIO()
    body.write(b"\xc3\x01" + older.fingerprint)
    schemaless_writer(body, older.parsed, record)

    event = SingleObjectCodec(writer_schemas=(older,)).decode(body.getvalue(), topic="t")
    assert event == written  # `scored` filled in from its default


def test_readers_before_scored_read_an_unscored_episode_as_reward_zero() -> None:
    import io

    from fastavro import schemaless_reader

    older = load_schema_json(_episode_schema_before_scored(), event_type="episode")
    data = SingleObjectCodec().encode(_episode(scored=False), topic="t")
    record = schemaless_reader(io.BytesIO(data[10:]), schema_of("episode").parsed, older.parsed)
    assert record["reward"] == 0.0
    assert "scored" not in record


def test_an_unscored_episode_event_carries_reward_zero() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="unscored"):
        type(_episode(scored=False)).model_validate(
            {**_episode(scored=False).model_dump(), "reward": 0.5}
        )
