"""The Avro contracts, loaded once from `avro/*.avsc` with their fingerprints."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Any, cast

from fastavro.schema import fingerprint, parse_schema, to_parsing_canonical_form

from fulmen.schemas._events import EVENT_MODELS, EventType

# Named types defined in a file of their own, shared by the event schemas.
_SHARED_TYPES = {"fulmen.EventMeta": "event_meta"}
_EVENT_FILES: dict[EventType, str] = {
    "span": "span",
    "reward": "reward",
    "rollout": "rollout_event",
    "version": "version_event",
    "decision": "release_decision",
    "serving_ack": "serving_ack",
    "episode": "episode_completed",
    "feedback": "feedback",
}


@dataclass(frozen=True)
class AvroSchema:
    """One event's writer/reader schema.

    `fingerprint` is the 8-byte CRC-64-AVRO fingerprint of the Parsing Canonical Form, in
    the little-endian order that single-object encoding puts on the wire.
    """

    event_type: EventType
    name: str
    parsed: Any  # fastavro's parsed schema object
    expanded_json: str  # named types inlined: what a schema registry stores
    fingerprint: bytes


def load_schema_json(
    raw: dict[str, Any], *, event_type: EventType, self_contained: bool = False
) -> AvroSchema:
    """Parse one record schema. Unless `self_contained` (as a registry returns them, named
    types inlined), references such as `fulmen.EventMeta` resolve from avro/."""
    document = raw if self_contained else _inline_shared_types(raw, defined=set())
    parsed = parse_schema(document)
    canonical = to_parsing_canonical_form(parsed)
    return AvroSchema(
        event_type=event_type,
        name=str(cast("dict[str, Any]", parsed)["name"]),
        parsed=parsed,
        expanded_json=json.dumps(document),
        fingerprint=bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO")),
    )


@cache
def current_schemas() -> dict[EventType, AvroSchema]:
    """The schemas this build writes with and reads into, by event type."""
    return {
        event_type: load_schema_json(_read(file), event_type=event_type)
        for event_type, file in _EVENT_FILES.items()
    }


def schema_of(event_type: EventType) -> AvroSchema:
    return current_schemas()[event_type]


def raw_schema(event_type: EventType) -> dict[str, Any]:
    """The `.avsc` document of an event type, as written (named types by reference)."""
    return _read(_EVENT_FILES[event_type])


def _inline_shared_types(node: Any, *, defined: set[str]) -> Any:
    """Replace the first reference to each shared named type by its definition (Avro allows
    a name to be defined once per schema; later references stay names)."""
    if isinstance(node, str):
        shared = _SHARED_TYPES.get(node)
        if shared is None or node in defined:
            return node
        defined.add(node)
        return _inline_shared_types(_read(shared), defined=defined)
    if isinstance(node, list):
        return [_inline_shared_types(item, defined=defined) for item in node]
    if isinstance(node, dict):
        return {key: _inline_shared_types(value, defined=defined) for key, value in node.items()}
    return node


def _read(file: str) -> dict[str, Any]:
    text = files("fulmen.schemas").joinpath("avro", f"{file}.avsc").read_text("utf-8")
    document: dict[str, Any] = json.loads(text)
    return document


assert set(_EVENT_FILES) == set(EVENT_MODELS)
