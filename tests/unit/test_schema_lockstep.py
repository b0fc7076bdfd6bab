"""The pydantic models mirror the .avsc files field by field: names, order, types,
optionality, defaults and enum symbols."""

from __future__ import annotations

import types
import typing
from typing import Any, Literal, get_args, get_origin

import pytest
from pydantic import BaseModel

from fulmen.schemas import EVENT_MODELS, EventMeta
from fulmen.schemas._avro import raw_schema

_PRIMITIVES: dict[str, type] = {
    "string": str,
    "int": int,
    "long": int,
    "float": float,
    "double": float,
    "boolean": bool,
}


def _unwrap_annotated(annotation: Any) -> Any:
    while get_origin(annotation) is typing.Annotated:
        annotation = get_args(annotation)[0]
    return annotation


def _check_type(avro: Any, annotation: Any, named: dict[str, Any], where: str) -> None:
    annotation = _unwrap_annotated(annotation)
    if isinstance(avro, list):  # union: only ["null", T] is used
        assert avro[0] == "null", where
        assert len(avro) == 2, where
        assert get_origin(annotation) in (types.UnionType, typing.Union), where
        non_null = [a for a in get_args(annotation) if a is not type(None)]
        assert len(non_null) == 1, where
        _check_type(avro[1], non_null[0], named, where)
        return
    if isinstance(avro, str):
        if avro in _PRIMITIVES:
            assert annotation is _PRIMITIVES[avro], f"{where}: {annotation} vs {avro}"
            return
        avro = named[avro if "." in avro else f"fulmen.{avro}"]
    kind = avro["type"]
    if kind == "record":
        named[f"fulmen.{avro['name']}"] = avro
        assert isinstance(annotation, type), where
        assert issubclass(annotation, BaseModel), where
        _check_record(avro, annotation, named)
    elif kind == "enum":
        named[f"fulmen.{avro['name']}"] = avro
        assert get_origin(annotation) is Literal, where
        assert list(get_args(annotation)) == avro["symbols"], where
    elif kind == "array":
        assert get_origin(annotation) is list, where
        _check_type(avro["items"], get_args(annotation)[0], named, where)
    elif kind == "map":
        assert get_origin(annotation) is dict, where
        assert get_args(annotation)[0] is str, where
        _check_type(avro["values"], get_args(annotation)[1], named, where)
    else:
        _check_type(kind, annotation, named, where)


def _check_record(avro: dict[str, Any], model: type[BaseModel], named: dict[str, Any]) -> None:
    assert avro["name"] == model.__name__  # the codec names union branches by class name
    avro_fields = [f["name"] for f in avro["fields"]]
    assert avro_fields == list(model.model_fields), f"{model.__name__} field names/order"
    for field in avro["fields"]:
        info = model.model_fields[field["name"]]
        where = f"{model.__name__}.{field['name']}"
        _check_type(field["type"], info.annotation, named, where)
        if "default" in field:
            assert not info.is_required(), f"{where} has an Avro default but is required"
            default = info.get_default(call_default_factory=True)
            if isinstance(default, BaseModel):
                default = default.model_dump()
            assert default == field["default"], where
        else:
            assert info.is_required(), f"{where} has a default only in the model"


@pytest.mark.parametrize("event_type", sorted(EVENT_MODELS))
def test_models_mirror_avro(event_type: str) -> None:
    named = {"fulmen.EventMeta": None}
    from fulmen.schemas._avro import _read

    named["fulmen.EventMeta"] = _read("event_meta")
    _check_record(raw_schema(event_type), EVENT_MODELS[event_type], named)  # type: ignore[arg-type]


def test_meta_mirrors_avro() -> None:
    from fulmen.schemas._avro import _read

    _check_record(_read("event_meta"), EventMeta, {})
