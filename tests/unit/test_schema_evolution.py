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
