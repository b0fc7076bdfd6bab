# cython: language_level=3, boundscheck=False, wraparound=False
"""Avro compiled to C: a record schema becomes a tree of typed nodes once, and an
`AvroWriter` walks an event model's attributes along it into one C buffer, an `AvroReader`
walks bytes along it into the plain dicts fastavro would give.

Why not fastavro: for a 1 KB LLM span its `schemaless_writer` costs ≈ 23 µs (it dispatches
on the schema's type names for every value) plus ≈ 5 µs to turn the model into the dicts it
takes, and its `schemaless_reader` ≈ 20 µs through a file object; Python code generated per
schema wrote one in ≈ 12 µs. Here a span is written in ≈ 2.5 µs and read in ≈ 3 µs
(docs/producers.md, docs/streams.md).

The bytes and the dicts are fastavro's (tests/unit/test_avro_compiled.py compares them for
every event type and for the values that take other paths, and feeds the reader corrupt
bytes). Supported: the types the contracts use — primitives, enums, records, arrays, maps,
and two-branch unions with `null`; any other schema is refused with `NotImplementedError`.
The reader reads one schema into itself; resolving another writer's schema is fastavro's.
"""

import sys

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.float cimport PyFloat_AsDouble
from cpython.long cimport PyLong_AsLongLong
from cpython.unicode cimport PyUnicode_AsUTF8AndSize, PyUnicode_DecodeUTF8
from libc.stdint cimport int64_t, uint64_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcpy

# Doubles and floats are copied as the machine holds them; Avro's are little-endian.
if sys.byteorder != "little":
    raise ImportError("fulmen's compiled Avro needs a little-endian machine")

_FIRST_CAPACITY = 2048

cdef enum Kind:
    NULL_VALUE
    STRING
    LONG
    DOUBLE
    FLOAT
    BOOLEAN
    ENUM
    RECORD
    OPTIONAL
    ARRAY
    MAP


cdef struct Buffer:
    char* data
    Py_ssize_t size
    Py_ssize_t capacity


cdef int reserve(Buffer* buffer, Py_ssize_t extra) except -1:
    cdef Py_ssize_t capacity = buffer.capacity
    cdef char* data
    if buffer.size + extra <= capacity:
        return 0
    while capacity < buffer.size + extra:
        capacity *= 2
    data = <char*>realloc(buffer.data, capacity)
    if data == NULL:
        raise MemoryError()
    buffer.data = data
    buffer.capacity = capacity
    return 0


cdef inline int put_varint(Buffer* buffer, uint64_t value) except -1:
    reserve(buffer, 10)
    while value >= 0x80:
        buffer.data[buffer.size] = <char>((value & 0x7F) | 0x80)
        buffer.size += 1
        value >>= 7
    buffer.data[buffer.size] = <char>value
    buffer.size += 1
    return 0


cdef inline int put_long(Buffer* buffer, int64_t value) except -1:
    """Zigzag, then varint: Avro's int and long."""
    return put_varint(buffer, (<uint64_t>value << 1) ^ <uint64_t>(value >> 63))


cdef inline int put_raw(Buffer* buffer, const char* data, Py_ssize_t size) except -1:
    reserve(buffer, size)
    memcpy(buffer.data + buffer.size, data, size)
    buffer.size += size
    return 0


cdef inline int put_string(Buffer* buffer, object text) except -1:
    """Length, then UTF-8; a `str` only (anything else is a TypeError, a lone surrogate a
    UnicodeEncodeError)."""
    cdef Py_ssize_t size
    cdef const char* data = PyUnicode_AsUTF8AndSize(text, &size)
    put_long(buffer, size)
    return put_raw(buffer, data, size)


cdef class _Node:
    """One schema position: its kind, the attribute it is read from (a record's field), its
    fields (a record), its item or value (an array, a map, an optional), its symbols and
    their indexes (an enum), and where `null` stands in its union (an optional)."""

    cdef Kind kind
    cdef str attribute
    cdef list fields
    cdef _Node item
    cdef list symbols
    cdef dict symbol_index
    cdef int64_t null_index


cdef int write(_Node node, object value, Buffer* buffer) except -1:
    cdef _Node field
    cdef double double_value
    cdef float float_value
    cdef Kind kind = node.kind
    if kind == STRING:
        put_string(buffer, value)
    elif kind == LONG:
        put_long(buffer, PyLong_AsLongLong(value))
    elif kind == RECORD:
        for field in node.fields:
            write(field, getattr(value, field.attribute), buffer)
    elif kind == OPTIONAL:
        if value is None:
            put_long(buffer, node.null_index)
        else:
            put_long(buffer, 1 - node.null_index)
            write(node.item, value, buffer)
    elif kind == ARRAY:
        if len(value):
            put_long(buffer, len(value))
            for item in value:
                write(node.item, item, buffer)
        put_varint(buffer, 0)
    elif kind == MAP:
        if len(value):
            put_long(buffer, len(value))
            for key, item in (<dict?>value).items():
                put_string(buffer, key)
                write(node.item, item, buffer)
        put_varint(buffer, 0)
    elif kind == DOUBLE:
        double_value = PyFloat_AsDouble(value)
        put_raw(buffer, <char*>&double_value, 8)
    elif kind == FLOAT:
        float_value = <float>PyFloat_AsDouble(value)
        put_raw(buffer, <char*>&float_value, 4)
    elif kind == BOOLEAN:
        put_varint(buffer, 1 if value else 0)
    elif kind == ENUM:
        put_long(buffer, node.symbol_index[value])
    return 0


cdef struct Cursor:
    const unsigned char* data
    Py_ssize_t position
    Py_ssize_t end


class CorruptAvro(ValueError):
    """Bytes that are not a value of the schema: cut short, a length or index out of range,
    a varint past 64 bits, or bytes left over."""


cdef int64_t take_long(Cursor* cursor) except? -1:
    cdef uint64_t value = 0
    cdef unsigned char byte
    cdef int shift = 0
    while True:
        if cursor.position >= cursor.end:
            raise CorruptAvro("cut short in a varint")
        byte = cursor.data[cursor.position]
        cursor.position += 1
        if shift == 63 and byte > 1:
            raise CorruptAvro("a varint past 64 bits")
        value |= <uint64_t>(byte & 0x7F) << shift
        if not byte & 0x80:
            return <int64_t>(value >> 1) ^ -<int64_t>(value & 1)
        shift += 7


cdef Py_ssize_t take_size(Cursor* cursor, Py_ssize_t least) except -1:
    """A length or a block's count, checked against the bytes left (each item takes at
    least `least` bytes)."""
    cdef int64_t size = take_long(cursor)
    if size < 0 or size * least > cursor.end - cursor.position:
        raise CorruptAvro(f"a length of {size} with {cursor.end - cursor.position} bytes left")
    return <Py_ssize_t>size


cdef const unsigned char* take_raw(Cursor* cursor, Py_ssize_t size) except NULL:
    cdef const unsigned char* start = cursor.data + cursor.position
    if size > cursor.end - cursor.position:
        raise CorruptAvro(f"cut short: {size} bytes wanted, {cursor.end - cursor.position} left")
    cursor.position += size
    return start


cdef inline object take_string(Cursor* cursor):
    cdef Py_ssize_t size = take_size(cursor, 1)
    return PyUnicode_DecodeUTF8(<const char*>take_raw(cursor, size), size, "strict")


cdef Py_ssize_t take_block(Cursor* cursor) except -1:
    """The count of the next block of an array or a map (0: the end). A negative count is
    followed by the block's size in bytes, which is skipped."""
    cdef int64_t count = take_long(cursor)
    if count < 0:
        count = -count
        take_long(cursor)
    if count < 0 or count > cursor.end - cursor.position:
        raise CorruptAvro(f"a block of {count} with {cursor.end - cursor.position} bytes left")
    return <Py_ssize_t>count


cdef object read(_Node node, Cursor* cursor):
    cdef _Node field
    cdef dict record
    cdef list items
    cdef dict entries
    cdef double double_value
    cdef float float_value
    cdef int64_t index
    cdef Py_ssize_t count, i
    cdef Kind kind = node.kind
    if kind == STRING:
        return take_string(cursor)
    if kind == LONG:
        return take_long(cursor)
    if kind == RECORD:
        record = {}
        for field in node.fields:
            record[field.attribute] = read(field, cursor)
        return record
    if kind == OPTIONAL:
        index = take_long(cursor)
        if index == node.null_index:
            return None
        if index != 1 - node.null_index:
            raise CorruptAvro(f"union branch {index} of 2")
        return read(node.item, cursor)
    if kind == ARRAY:
        items = []
        count = take_block(cursor)
        while count:
            for i in range(count):
                items.append(read(node.item, cursor))
            count = take_block(cursor)
        return items
    if kind == MAP:
        entries = {}
        count = take_block(cursor)
        while count:
            for i in range(count):
                key = take_string(cursor)
                entries[key] = read(node.item, cursor)
            count = take_block(cursor)
        return entries
    if kind == DOUBLE:
        memcpy(&double_value, take_raw(cursor, 8), 8)
        return double_value
    if kind == FLOAT:
        memcpy(&float_value, take_raw(cursor, 4), 4)
        return float_value
    if kind == BOOLEAN:
        return take_raw(cursor, 1)[0] != 0
    if kind == ENUM:
        index = take_long(cursor)
        if not 0 <= index < len(node.symbols):
            raise CorruptAvro(f"enum index {index} of {len(node.symbols)}")
        return node.symbols[index]
    return None  # null


_KINDS = {
    "null": NULL_VALUE,
    "string": STRING,
    "int": LONG,
    "long": LONG,
    "double": DOUBLE,
    "float": FLOAT,
    "boolean": BOOLEAN,
}


cdef _Node compile_node(object schema, dict named, str attribute):
    """The node for `schema` (as `fastavro.parse_schema` gives it: a named type is defined
    where first used, and referred to by its full name afterwards)."""
    cdef _Node node = _Node()
    node.attribute = attribute
    if isinstance(schema, list):
        if len(schema) != 2 or "null" not in schema:
            raise NotImplementedError(f"no compiled writer for the union {schema!r}")
        node.kind = OPTIONAL
        node.null_index = schema.index("null")
        node.item = compile_node(schema[1 - node.null_index], named, None)
        return node
    if isinstance(schema, str) and schema in named:
        schema = named[schema]
    kind = schema if isinstance(schema, str) else schema["type"]
    if kind in _KINDS:
        node.kind = _KINDS[kind]
    elif kind == "enum":
        node.kind = ENUM
        node.symbols = list(schema["symbols"])
        node.symbol_index = {symbol: index for index, symbol in enumerate(node.symbols)}
        named[schema["name"]] = schema
    elif kind == "record":
        node.kind = RECORD
        node.fields = []
        for field in schema["fields"]:
            node.fields.append(compile_node(field["type"], named, field["name"]))
        named[schema["name"]] = schema
    elif kind == "array":
        node.kind = ARRAY
        node.item = compile_node(schema["items"], named, None)
    elif kind == "map":
        node.kind = MAP
        node.item = compile_node(schema["values"], named, None)
    else:
        raise NotImplementedError(f"no compiled writer for Avro type {kind!r}")
    return node


cdef _Node compile_record(object parsed):
    """The root node of a writer or a reader: event schemas are records."""
    if not isinstance(parsed, dict) or parsed.get("type") != "record":
        raise NotImplementedError("compiled Avro writes and reads records only")
    return compile_node(parsed, {}, None)


cdef class AvroWriter:
    """Writes models of one record schema: `prefix`, then the Avro body of the model.

    Raises on a value the schema cannot hold: an int beyond a long (`OverflowError`), a
    string that is not UTF-8 or not a `str`, an unknown enum symbol (`KeyError`). Holds the
    GIL throughout, so one writer serves any number of threads.
    """

    cdef _Node root
    cdef bytes prefix

    def __init__(self, parsed, bytes prefix not None=b""):
        self.root = compile_record(parsed)
        self.prefix = prefix

    def encode(self, value):
        cdef Buffer buffer
        buffer.capacity = _FIRST_CAPACITY
        buffer.size = 0
        buffer.data = <char*>malloc(buffer.capacity)
        if buffer.data == NULL:
            raise MemoryError()
        try:
            put_raw(&buffer, PyBytes_AS_STRING(self.prefix), PyBytes_GET_SIZE(self.prefix))
            write(self.root, value, &buffer)
            return PyBytes_FromStringAndSize(buffer.data, buffer.size)
        finally:
            free(buffer.data)


cdef class AvroReader:
    """Reads records of one schema, written with that same schema, into dicts.

    Raises `CorruptAvro` on bytes that are not one such record (nothing else but the
    `UnicodeDecodeError` of a string that is not UTF-8), and never reads outside `data`.
    """

    cdef _Node root

    def __init__(self, parsed):
        self.root = compile_record(parsed)

    def decode(self, data, Py_ssize_t offset=0):
        cdef Cursor cursor
        cdef bytes raw = data if type(data) is bytes else bytes(memoryview(data))
        if not 0 <= offset <= len(raw):
            raise ValueError(f"offset {offset} outside {len(raw)} bytes")
        cursor.data = <const unsigned char*>PyBytes_AS_STRING(raw)
        cursor.position = offset
        cursor.end = len(raw)
        record = read(self.root, &cursor)
        if cursor.position != cursor.end:
            raise CorruptAvro(f"{cursor.end - cursor.position} trailing bytes")
        return record
