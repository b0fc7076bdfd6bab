"""Confluent wire format (`00`, 4-byte schema id, Avro body) through confluent-kafka's
schema-registry serializers, for deployments that run a schema registry."""

from __future__ import annotations

import json
import struct
from typing import Any

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from fulmen.schemas._avro import AvroSchema, current_schemas, load_schema_json
from fulmen.schemas._codec import Codec, Decoded, DecodeError, decode_body
from fulmen.schemas._events import Event, EventType
from fulmen.schemas._records import avro_record

CONFLUENT_MAGIC = b"\x00"
_HEADER = struct.Struct(">bI")


class ConfluentCodec(Codec):
    """Registers and resolves schemas in a Confluent-compatible registry.

    Subjects follow the registry's default TopicNameStrategy (`<topic>-value`). Decoding
    fetches the writer schema by id (cached by the client) and resolves it into this build's
    reader schema, exactly like the single-object codec does with fingerprints.
    """

    def __init__(self, registry: SchemaRegistryClient) -> None:
        self._registry = registry
        self._current = current_schemas()
        self._serializers = {
            event_type: AvroSerializer(
                registry,
                schema.expanded_json,
                to_dict=_to_dict,
                conf={"auto.register.schemas": True},
            )
            for event_type, schema in self._current.items()
        }
        self._writers: dict[int, AvroSchema] = {}

    @classmethod
    def from_url(cls, url: str, **conf: Any) -> ConfluentCodec:
        return cls(SchemaRegistryClient.new_client({"url": url, **conf}))

    def encode(self, event: Event, *, topic: str) -> bytes:
        context = SerializationContext(topic, MessageField.VALUE)
        data: bytes = self._serializers[event.event_type](event, context)
        return data

    def decode_fields(self, data: bytes, *, topic: str) -> Decoded:
        if len(data) < _HEADER.size:
            raise DecodeError("truncated", f"{len(data)} bytes, a header alone is {_HEADER.size}")
        magic, schema_id = _HEADER.unpack_from(data)
        if magic != 0:
            raise DecodeError("bad_magic", f"expected 00, got {data[:1].hex().upper()}")
        writer = self._writer(schema_id)
        return decode_body(
            data, _HEADER.size, writer=writer, reader=self._current[writer.event_type]
        )

    def _writer(self, schema_id: int) -> AvroSchema:
        writer = self._writers.get(schema_id)
        if writer is not None:
            return writer
        try:
            registered = self._registry.get_schema(schema_id)
        except Exception as exc:  # network, auth or 404: all leave the bytes undecodable
            raise DecodeError("registry", f"schema id {schema_id}: {exc}") from exc
        document = json.loads(registered.schema_str or "{}")
        event_type = _event_type_named(str(document.get("name", "")), document.get("namespace"))
        writer = load_schema_json(document, event_type=event_type, self_contained=True)
        self._writers[schema_id] = writer
        return writer


def _event_type_named(name: str, namespace: str | None) -> EventType:
    full = name if "." in name or not namespace else f"{namespace}.{name}"
    for event_type, schema in current_schemas().items():
        if schema.name == full:
            return event_type
    raise DecodeError("unknown_fingerprint", f"registry schema {full} is not a Fulmen event")


def _to_dict(event: Event, _context: SerializationContext) -> dict[str, Any]:
    return avro_record(event)
