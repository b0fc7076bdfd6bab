"""Event models as the plain dicts fastavro writes, fast: for the Confluent wire format, whose
serializer takes dicts (the single-object codec writes models directly, `_avro_compiled.pyx`).

`BaseModel.model_dump` costs ~25 µs for a span on this hardware; a per-class converter that
copies `__dict__` and recurses only into the fields that hold models does the same in a few
µs. A model in a `["null", record]` union is passed as fastavro's `(record name, dict)`
tuple, which names the branch: otherwise fastavro validates the whole record against each
branch before writing it, doubling the cost of an LLM span.
tests/unit/test_codec.py keeps the result equal to `model_dump`.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from functools import cache
from typing import Any, get_args, get_origin

from pydantic import BaseModel

Converter = Callable[[BaseModel], dict[str, Any]]


def avro_record(model: BaseModel) -> dict[str, Any]:
    """`model` as a dict of Avro-ready values (nested models become dicts)."""
    return _converter(type(model))(model)


@cache
def _converter(model_class: type[BaseModel]) -> Converter:
    nested: list[tuple[str, Callable[[Any], Any]]] = []
    for name, info in model_class.model_fields.items():
        convert = _value_converter(info.annotation)
        if convert is not None:
            nested.append((name, convert))

    def convert_model(model: BaseModel) -> dict[str, Any]:
        record = model.__dict__.copy()
        for name, convert in nested:
            record[name] = convert(record[name])
        return record

    return convert_model


def _value_converter(annotation: Any) -> Callable[[Any], Any] | None:
    """How to convert a field of this type, or None when its values are Avro-ready."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _converter(annotation)
    origin = get_origin(annotation)
    if origin in (types.UnionType, typing.Union):
        (branch,) = [arg for arg in get_args(annotation) if arg is not type(None)]
        if not (isinstance(branch, type) and issubclass(branch, BaseModel)):
            return None
        name, convert = f"fulmen.{branch.__name__}", _converter(branch)
        return lambda value: None if value is None else (name, convert(value))
    if origin is list:
        item = _value_converter(get_args(annotation)[0])
        if item is None:
            return None
        return lambda values: [item(value) for value in values]
    return None
