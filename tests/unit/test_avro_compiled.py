"""The compiled writers write exactly fastavro's bytes, and the compiled readers read exactly
fastavro's dicts, for every event type and for the values that take other paths through
them (big and negative ints, long arrays, non-ASCII); corrupt bytes are refused."""

from __future__ import annotations

import io
import random
from types import SimpleNamespace

import pytest
from fastavro import parse_schema, schemaless_reader, schemaless_writer

from fulmen.schemas import (
    Attributes,
    Event,
    Reward,
    SingleObjectCodec,
    SpanEvent,
    VersionEvent,
    current_schemas,
)
from fulmen.schemas._avro_compiled import AvroReader, AvroWriter, CorruptAvro
from fulmen.schemas._records import avro_record
from tests.support.events import all_events, llm_span, meta


def _fastavro(event: Event) -> bytes:
    schema = current_schemas()[event.event_type]
    buffer = io.BytesIO()
    buffer.write(b"\xc3\x01" + schema.fingerprint)
    schemaless_writer(buffer, schema.parsed, avro_record(event))
    return buffer.getvalue()


def _unusual() -> list[Event]:
    span = llm_span(payload=20_000)
    assert span.llm is not None
    llm = span.llm.model_copy(
        update={
            "prompt_token_ids": list(range(0, 400_000, 7)),  # past the short-array path
            "response_token_ids": [50_000, 3, 2**32 - 1],  # short, past the lookup table
            "response_logprobs": [-(i / 3) for i in range(100)],
            "temperature": 0.7,
            "max_tokens": 2**40,
            "input_messages": "ünïcødé ✓ 日本語",
        }
    )
    ints = {"zero": 0, "neg": -1, "neg64": -64, "neg65": -65, "big": 2**63 - 1, "low": -(2**63)}
    return [
        span.model_copy(
            update={
                "llm": llm,
                "attributes": Attributes(ints=ints, doubles={"x": -0.0}, bools={"b": True}),
                "events": [
                    SpanEvent(name="e", time_unix_nano=1),
                    SpanEvent(name="é", time_unix_nano=2),
                ],
            }
        ),
        Reward(meta=meta("ŕ", 9), value=-3.5, comment=""),
        VersionEvent(
            meta=meta(),
            version_id="v",
            kind="prompt",
            prompt_templates={"a": "b" * 9000},
            metrics={"m": 1e300},
        ),
    ]


@pytest.mark.parametrize("event", [*all_events(), *_unusual()], ids=lambda e: e.event_type)
def test_compiled_writers_write_fastavros_bytes(event: Event) -> None:
    assert SingleObjectCodec().encode(event, topic="t") == _fastavro(event)


def test_an_int_beyond_a_long_is_refused() -> None:
    span = llm_span().model_copy(update={"attributes": Attributes(ints={"x": 2**63})})
    with pytest.raises(OverflowError):
        SingleObjectCodec().encode(span, topic="t")


def test_longs_ints_and_reals_are_fastavros() -> None:
    schema = parse_schema(
        {
            "type": "record",
            "name": "Numbers",
            "fields": [
                {"name": "long", "type": "long"},
                {"name": "int", "type": "int"},
                {"name": "double", "type": "double"},
                {"name": "float", "type": "float"},
            ],
        }
    )
    writer = AvroWriter(schema)
    rng = random.Random(3)
    edges = [0, -1, 63, 64, -64, -65, 8191, 8192, 16383, 16384, 2**55, -(2**55), 2**56]
    longs = [*edges, 2**63 - 1, -(2**63), *(rng.randrange(-(2**63), 2**63) for _ in range(3000))]
    for value in longs:
        small = value % (2**31) - 2**30
        real = value / 3.0
        record = SimpleNamespace(long=value, int=small, double=real, float=real)
        buffer = io.BytesIO()
        schemaless_writer(buffer, schema, vars(record))
        assert writer.encode(record) == buffer.getvalue(), value


@pytest.mark.parametrize(
    "field_type",
    [
        ["null", "string", "long"],
        {"type": "fixed", "name": "F", "size": 4},
        {"type": "record", "name": "Node", "fields": [{"name": "next", "type": ["null", "Node"]}]},
    ],
    ids=["three-branch union", "fixed", "recursive record"],
)
def test_schemas_beyond_the_contracts_are_refused(field_type: object) -> None:
    schema = {"type": "record", "name": "R", "fields": [{"name": "x", "type": field_type}]}
    with pytest.raises(NotImplementedError):
        AvroWriter(parse_schema(schema))


@pytest.mark.parametrize(
    ("update", "error"),
    [
        ({"name": "\ud800"}, UnicodeEncodeError),  # a lone surrogate is no UTF-8
        ({"name": 3}, TypeError),
        ({"kind": "SIDEWAYS"}, KeyError),
        ({"start_time_unix_nano": 2**64}, OverflowError),
    ],
    ids=["surrogate", "not a string", "unknown symbol", "beyond a long"],
)
def test_values_the_schema_cannot_hold_raise(update: dict[str, object], error: type) -> None:
    span = llm_span().model_copy(update=update)
    with pytest.raises(error):
        SingleObjectCodec().encode(span, topic="t")


def _fastavro_read(data: bytes, event_type: str) -> object:
    body = io.BytesIO(data)
    body.seek(10)
    record = schemaless_reader(body, current_schemas()[event_type].parsed, None)
    assert body.tell() == len(data)
    return record


@pytest.mark.parametrize("event", [*all_events(), *_unusual()], ids=lambda e: e.event_type)
def test_compiled_readers_read_fastavros_dicts(event: Event) -> None:
    data = SingleObjectCodec().encode(event, topic="t")
    reader = AvroReader(current_schemas()[event.event_type].parsed)
    assert reader.decode(data, 10) == _fastavro_read(data, event.event_type)


def test_blocks_with_negative_counts_are_read() -> None:
    """Writers may split an array or a map into blocks, a negative count followed by the
    block's size in bytes."""
    schema = parse_schema(
        {
            "type": "record",
            "name": "Blocks",
            "fields": [
                {"name": "xs", "type": {"type": "array", "items": "long"}},
                {"name": "m", "type": {"type": "map", "values": "string"}},
            ],
        }
    )
    # xs: a block of -2 (2 items, 2 bytes), a block of 1, the end; m: {"a": "b"}, the end
    data = bytes([3, 4, 2, 4, 2, 6, 0, 2, 2, ord("a"), 2, ord("b"), 0])
    body = io.BytesIO(data)
    assert AvroReader(schema).decode(data) == schemaless_reader(body, schema, None)
    assert AvroReader(schema).decode(data) == {"xs": [1, 2, 3], "m": {"a": "b"}}


def test_corrupt_bytes_raise_or_read_as_fastavro_reads_them() -> None:
    """Cut short, flipped, or grown: the compiled reader raises `CorruptAvro` (or the
    `UnicodeDecodeError` of a broken string), or reads what fastavro reads — never
    anything else, and never past the end."""
    rng = random.Random(7)
    samples = [SingleObjectCodec().encode(e, topic="t") for e in [*all_events(), *_unusual()]]
    types = [e.event_type for e in [*all_events(), *_unusual()]]
    for _ in range(4000):
        index = rng.randrange(len(samples))
        data = bytearray(samples[index])
        change = rng.randrange(3)
        if change == 0:
            del data[rng.randrange(10, len(data)) :]
        elif change == 1:
            for _ in range(rng.randrange(1, 4)):
                data[rng.randrange(10, len(data))] = rng.randrange(256)
        else:
            data += bytes(rng.randrange(256) for _ in range(rng.randrange(1, 4)))
        reader = AvroReader(current_schemas()[types[index]].parsed)
        try:
            record = reader.decode(bytes(data), 10)
        except (CorruptAvro, UnicodeDecodeError):
            continue
        assert record == _fastavro_read(bytes(data), types[index])


@pytest.mark.parametrize(
    "data",
    [
        b"\xff" * 11,  # a varint past 64 bits
        b"\x81\x80\x80\x80\x80\x80\x80\x80\x80\x02",  # its tenth byte past the 64th bit
        b"\x7f",  # a length of -64
        b"\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01",  # a length of 2**62
    ],
    ids=["eleven bytes", "bit 64", "negative length", "huge length"],
)
def test_impossible_lengths_are_corrupt(data: bytes) -> None:
    schema = parse_schema(
        {"type": "record", "name": "S", "fields": [{"name": "s", "type": "string"}]}
    )
    with pytest.raises(CorruptAvro):
        AvroReader(schema).decode(data)


def test_any_bytes_like_is_read_and_anything_else_refused() -> None:
    data = SingleObjectCodec().encode(llm_span(), topic="t")
    reader = AvroReader(current_schemas()["span"].parsed)
    assert reader.decode(bytearray(data), 10) == reader.decode(memoryview(data), 10)
    assert reader.decode(data, 10) == reader.decode(bytearray(data), 10)
    for not_bytes in (None, 3, "text"):
        with pytest.raises(TypeError):
            reader.decode(not_bytes, 0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="offset"):
        reader.decode(data, len(data) + 1)
    with pytest.raises(TypeError):
        AvroWriter(current_schemas()["span"].parsed, None)  # type: ignore[arg-type]
