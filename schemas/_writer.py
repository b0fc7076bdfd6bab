"""Compiled Avro writers: one generated Python function per record schema, reading the
event model's attributes and writing the Avro binary body straight into a `bytearray`.

Why not `fastavro.schemaless_writer` per event: for a 1 KB LLM span it costs ~23 µs (it
dispatches on the schema's type names for every value), plus ~5 µs to turn the model into
the dicts it takes; the sender thread cannot deliver 70k events/s at that price. The
generated code knows each field's type when it is compiled, so a value costs an attribute
read, a table lookup and an append (~11 µs a span). Arrays of floats are one `struct.pack`;
long arrays of ints (token ids) go through fastavro's C loop.

The bytes are fastavro's (tests/unit/test_avro_writer.py compares them for every event type
and for the values that take other paths). Supported: the types the contracts use —
primitives, enums, records, arrays, maps, and two-branch unions with `null`;
`compile_writer` refuses any other schema.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable
from typing import Any

from fastavro import parse_schema, schemaless_writer
from pydantic import BaseModel

Writer = Callable[[BaseModel, bytearray], None]
"""Appends the Avro body of a model to the buffer; raises on a value the schema cannot
hold (an int beyond a long, a string that is not UTF-8, an unknown enum symbol)."""

_LONG_MIN, _LONG_MAX = -(1 << 63), (1 << 63) - 1
_NATURAL_TABLE = 1 << 13
# Varints of 0..16383 (one or two bytes), and 14-bit groups as the two bytes they take
# inside a longer varint (both with the continuation bit): a 63-bit timestamp is 4 lookups.
_VARINT = tuple(
    bytes([n]) if n < 0x80 else bytes([n & 0x7F | 0x80, n >> 7]) for n in range(1 << 14)
)
_GROUP = tuple(bytes([n & 0x7F | 0x80, n >> 7 | 0x80]) for n in range(1 << 14))
# The zigzag varints of 0..8191: string lengths, counts, most ints.
_NATURAL = _VARINT[::2]
# Longer arrays of ints go to fastavro's C loop, shorter ones cost less without its set-up.
_FASTAVRO_FROM = 32
_DOUBLE = struct.Struct("<d").pack
_FLOAT = struct.Struct("<f").pack


def _long(value: int) -> bytes:
    """The zigzag varint of an Avro int or long."""
    if 0 <= value < _NATURAL_TABLE:
        return _NATURAL[value]
    if not _LONG_MIN <= value <= _LONG_MAX:
        raise OverflowError(f"{value} does not fit in an Avro long")
    zigzag = (value << 1) ^ (value >> 63)
    if zigzag >> 56:  # 9 or 10 bytes, as nanosecond timestamps are: no loop
        return (
            _GROUP[zigzag & 0x3FFF]
            + _GROUP[zigzag >> 14 & 0x3FFF]
            + _GROUP[zigzag >> 28 & 0x3FFF]
            + _GROUP[zigzag >> 42 & 0x3FFF]
            + _VARINT[zigzag >> 56]
        )
    out = b""
    while zigzag > 0x3FFF:
        out += _GROUP[zigzag & 0x3FFF]
        zigzag >>= 14
    return out + _VARINT[zigzag]


def _ints(items: Any) -> Callable[[list[int]], bytes]:
    """A non-empty array of ints or longs (`items`), block count and terminator included."""
    schema = parse_schema({"type": "array", "items": items})

    def write(values: list[int]) -> bytes:
        if min(values) >= 0 and max(values) < _NATURAL_TABLE:  # a C loop of lookups
            return _long(len(values)) + b"".join(map(_NATURAL.__getitem__, values)) + b"\x00"
        if len(values) < _FASTAVRO_FROM:
            return _long(len(values)) + b"".join(map(_long, values)) + b"\x00"
        buffer = io.BytesIO()
        schemaless_writer(buffer, schema, values)
        return buffer.getvalue()

    return write


def _reals(code: str) -> Callable[[list[float]], bytes]:
    """A non-empty array of doubles (`d`) or floats (`f`): one `struct.pack` call."""

    def write(values: list[float]) -> bytes:
        count = len(values)
        return _long(count) + struct.pack(f"<{count}{code}", *values) + b"\x00"

    return write


class _Compiler:
    """Generates the source of one function writing a record; nested records are inlined."""

    def __init__(self) -> None:
        self.names: dict[str, object] = {
            "_long": _long,
            "_NATURAL": _NATURAL,
            "_double": _DOUBLE,
            "_float": _FLOAT,
        }
        self._counter = 0

    def function(self, schema: dict[str, Any]) -> str:
        """The source of `_write(o, out)`, writing a record of `schema`."""
        body = self._fields(schema, "o", indent=1)
        return "\n".join(["def _write(o, out):", *(body or ["    pass"])])

    def _fields(self, schema: dict[str, Any], record: str, *, indent: int) -> list[str]:
        lines: list[str] = []
        for field in schema["fields"]:
            lines += self.value(field["type"], f"{record}.{field['name']}", indent=indent)
        return lines

    def value(self, schema: Any, expression: str, *, indent: int) -> list[str]:
        """Statements appending `expression`, a value of `schema`, to `out`."""
        if isinstance(schema, list):
            return self._union(schema, expression, indent=indent)
        pad = "    " * indent
        kind = schema if isinstance(schema, str) else schema["type"]
        if kind == "null":
            return []
        if kind == "string":
            return self._string(expression, pad)
        if kind in ("int", "long"):
            number = self._local()
            return [
                f"{pad}{number} = {expression}",
                f"{pad}out += _NATURAL[{number}] if 0 <= {number} < {_NATURAL_TABLE} "
                f"else _long({number})",
            ]
        if kind == "double":
            return [f"{pad}out += _double({expression})"]
        if kind == "float":
            return [f"{pad}out += _float({expression})"]
        if kind == "boolean":
            return [f"{pad}out += b'\\x01' if {expression} else b'\\x00'"]
        if kind == "enum":
            symbols = self._constant({s: _long(i) for i, s in enumerate(schema["symbols"])})
            return [f"{pad}out += {symbols}[{expression}]"]
        if kind == "record":
            record = self._local()
            return [f"{pad}{record} = {expression}", *self._fields(schema, record, indent=indent)]
        if kind == "array":
            return self._array(schema, expression, indent=indent)
        if kind == "map":
            return self._map(schema, expression, indent=indent)
        raise NotImplementedError(f"no compiled writer for Avro type {kind!r}")

    def _union(self, branches: list[Any], expression: str, *, indent: int) -> list[str]:
        if len(branches) != 2 or "null" not in branches:
            raise NotImplementedError(f"no compiled writer for the union {branches!r}")
        null_index = branches.index("null")
        other = branches[1 - null_index]
        pad = "    " * indent
        value = self._local()
        return [
            f"{pad}{value} = {expression}",
            f"{pad}if {value} is None:",
            f"{pad}    out += {_long(null_index)!r}",
            f"{pad}else:",
            f"{pad}    out += {_long(1 - null_index)!r}",
            *(self.value(other, value, indent=indent + 1) or [f"{pad}    pass"]),
        ]

    def _array(self, schema: dict[str, Any], expression: str, *, indent: int) -> list[str]:
        pad = "    " * indent
        values, item = self._local(), self._local()
        items = schema["items"]
        item_kind = items if isinstance(items, str) else items["type"]
        if item_kind in ("int", "long", "double", "float"):
            numbers = self._constant(
                _ints(items)
                if item_kind in ("int", "long")
                else _reals("d" if item_kind == "double" else "f")
            )
            return [
                f"{pad}{values} = {expression}",
                f"{pad}out += {numbers}({values}) if {values} else b'\\x00'",
            ]
        return [
            f"{pad}{values} = {expression}",
            f"{pad}if {values}:",
            f"{pad}    out += _long(len({values}))",
            f"{pad}    for {item} in {values}:",
            *self.value(items, item, indent=indent + 2),
            f"{pad}out += b'\\x00'",
        ]

    def _map(self, schema: dict[str, Any], expression: str, *, indent: int) -> list[str]:
        pad = "    " * indent
        entries, key, item = self._local(), self._local(), self._local()
        return [
            f"{pad}{entries} = {expression}",
            f"{pad}if {entries}:",
            f"{pad}    out += _long(len({entries}))",
            f"{pad}    for {key}, {item} in {entries}.items():",
            *self._string(key, pad + "        "),
            *self.value(schema["values"], item, indent=indent + 2),
            f"{pad}out += b'\\x00'",
        ]

    def _string(self, expression: str, pad: str) -> list[str]:
        data, size = self._local(), self._local()
        return [
            f"{pad}{data} = {expression}.encode()",
            f"{pad}out += _NATURAL[{size}] if ({size} := len({data})) < {_NATURAL_TABLE} "
            f"else _long({size})",
            f"{pad}out += {data}",
        ]

    def _local(self) -> str:
        self._counter += 1
        return f"v{self._counter}"

    def _constant(self, value: object) -> str:
        name = f"_c{len(self.names)}"
        self.names[name] = value
        return name


def compile_writer(parsed: dict[str, Any]) -> Writer:
    """The writer for a record schema as `fastavro.parse_schema` returns it (named types
    defined where first used)."""
    compiler = _Compiler()
    source = compiler.function(_expand(parsed, {}))
    namespace = dict(compiler.names)
    # The source is generated above from the schema; nothing in it comes from outside.
    exec(compile(source, f"<avro writer {parsed['name']}>", "exec"), namespace)
    writer: Writer = namespace["_write"]  # type: ignore[assignment]  # exec'd functions are untyped
    return writer


def _expand(schema: Any, named: dict[str, Any]) -> Any:
    """`schema` with references to named types replaced by their definitions."""
    if isinstance(schema, str):
        return named.get(schema, schema)
    if isinstance(schema, list):
        return [_expand(branch, named) for branch in schema]
    kind = schema["type"]
    if kind == "record":
        fields = [{**f, "type": _expand(f["type"], named)} for f in schema["fields"]]
        named[schema["name"]] = {**schema, "fields": fields}
        return named[schema["name"]]
    if kind == "enum":
        named[schema["name"]] = schema
    if kind == "array":
        return {**schema, "items": _expand(schema["items"], named)}
    if kind == "map":
        return {**schema, "values": _expand(schema["values"], named)}
    return schema
