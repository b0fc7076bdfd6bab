"""Type information for the compiled Avro writer (`_avro_writer.pyx`)."""

from typing import Any

from pydantic import BaseModel

class AvroWriter:
    """Writes models of one record schema: `prefix`, then the Avro body of the model."""

    def __init__(self, parsed: dict[str, Any], prefix: bytes = b"") -> None: ...
    def encode(self, value: BaseModel) -> bytes: ...
