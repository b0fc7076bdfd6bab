"""Type information for the compiled Avro writer and reader (`_avro_compiled.pyx`)."""

from typing import Any

from pydantic import BaseModel

class CorruptAvro(ValueError):
    """Bytes that are not a value of the schema."""

class AvroWriter:
    """Writes models of one record schema: `prefix`, then the Avro body of the model."""

    def __init__(self, parsed: dict[str, Any], prefix: bytes = b"") -> None: ...
    def encode(self, value: BaseModel) -> bytes: ...

class AvroReader:
    """Reads records of one schema, written with that same schema, into dicts."""

    def __init__(self, parsed: dict[str, Any]) -> None: ...
    def decode(self, data: bytes, offset: int = 0) -> dict[str, Any]: ...
