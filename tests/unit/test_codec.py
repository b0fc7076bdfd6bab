"""Single-object and Confluent framing: round trips, the spec's fingerprint, and typed errors."""

from __future__ import annotations

import contextlib
import random

import pytest

from fulmen.schemas import ConfluentCodec, DecodeError, SingleObjectCodec, current_schemas
from tests.support.events import all_events, llm_span


@pytest.mark.parametrize(
    "codec", [SingleObjectCodec(), ConfluentCodec.from_url("mock://codec-test")]
)
def test_every_event_type_round_trips(codec) -> None:
    for event in all_events():
        assert codec.decode(codec.encode(event, topic="t"), topic="t") == event


def test_single_object_header_is_magic_and_fingerprint() -> None:
    span = llm_span()
    data = SingleObjectCodec().encode(span, topic="t")
    assert data[:2] == b"\xc3\x01"
    assert data[2:10] == current_schemas()["span"].fingerprint


def test_fingerprint_matches_the_avro_spec_vector() -> None:
    from fastavro.schema import fingerprint

    # The Avro specification's CRC-64-AVRO of the schema "null", little-endian on the wire.
    assert bytes.fromhex(fingerprint('"null"', "CRC-64-AVRO")) == (7195948357588979594).to_bytes(
        8, "little"
    )


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"", "truncated"),
        (b"\xc3\x01abc", "truncated"),
        (b"\x00\x00\x00\x00\x01" + b"\x00" * 8, "bad_magic"),
        (b"\xc3\x01" + b"\xff" * 8 + b"body", "unknown_fingerprint"),
    ],
)
def test_bad_headers_raise_one_typed_error(data: bytes, problem: str) -> None:
    with pytest.raises(DecodeError) as raised:
        SingleObjectCodec().decode(data, topic="t")
    assert raised.value.problem == problem


def test_truncated_and_trailing_bodies_are_corrupt() -> None:
    codec = SingleObjectCodec()
    data = codec.encode(llm_span(), topic="t")
    for broken in (data[:-5], data + b"\x00"):
        with pytest.raises(DecodeError) as raised:
            codec.decode(broken, topic="t")
        assert raised.value.problem == "corrupt_payload"


def test_schema_invalid_body_is_reported() -> None:
    codec = SingleObjectCodec()
    data = bytearray(codec.encode(llm_span(), topic="t"))
    # attempt is the 3rd field of meta; overwrite the trace id hex with non-hex bytes instead:
    at = data.index(b"0af7651916cd43dd8448eb211c80319c")
    data[at : at + 4] = b"ZZZZ"
    with pytest.raises(DecodeError) as raised:
        codec.decode(bytes(data), topic="t")
    assert raised.value.problem == "invalid_event"


def test_random_corruption_never_raises_anything_but_decode_error() -> None:
    codec = SingleObjectCodec()
    data = codec.encode(llm_span(), topic="t")
    rng = random.Random(7)
    for _ in range(3000):
        broken = bytearray(data)
        for _ in range(rng.randint(1, 6)):
            broken[rng.randrange(10, len(broken))] = rng.randrange(256)
        with contextlib.suppress(DecodeError):
            codec.decode(bytes(broken), topic="t")


def test_confluent_codec_reports_unknown_schema_ids() -> None:
    codec = ConfluentCodec.from_url("mock://unknown-ids")
    with pytest.raises(DecodeError) as raised:
        codec.decode(b"\x00\x00\x00\x03\xe7rest", topic="t")
    assert raised.value.problem == "registry"


def test_fast_records_equal_model_dump() -> None:
    from fulmen.schemas._records import avro_record

    def plain(value: object) -> object:
        if isinstance(value, tuple):  # (record name, record): a named union branch
            return plain(value[1])
        if isinstance(value, dict):
            return {key: plain(item) for key, item in value.items()}
        if isinstance(value, list):
            return [plain(item) for item in value]
        return value

    for event in all_events():
        assert plain(avro_record(event)) == event.model_dump()


def test_episode_completed_round_trips() -> None:
    from fulmen.schemas import EpisodeCompleted
    from tests.support.events import NOW_NS, meta

    event = EpisodeCompleted(
        meta=meta("r9", 3),
        revision=1,
        task_id="2+2",
        status="timeout",
        reward=0.5,
        num_llm_calls=2,
        finished_at_unix_nano=NOW_NS,
    )
    codec = SingleObjectCodec()
    assert codec.decode(codec.encode(event, topic="t"), topic="t") == event
