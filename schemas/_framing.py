"""Reading either framing: a consumer does not choose how its producers were configured."""

from __future__ import annotations

from fulmen.schemas._codec import Codec, Decoded, DecodeError, SingleObjectCodec
from fulmen.schemas._confluent import CONFLUENT_MAGIC, ConfluentCodec
from fulmen.schemas._events import Event


class EitherFramingCodec(Codec):
    """Encodes with `writer`; decodes per message by its first bytes: `C3 01` is Avro
    single-object encoding, `00` the Confluent wire format, which needs `registry` (without
    one such a message is a `registry` problem, not a misread)."""

    def __init__(self, writer: Codec, *, registry: ConfluentCodec | None = None) -> None:
        self.writer = writer
        self._single = writer if isinstance(writer, SingleObjectCodec) else SingleObjectCodec()
        self._registry = registry

    def encode(self, event: Event, *, topic: str) -> bytes:
        return self.writer.encode(event, topic=topic)

    def decode_fields(self, data: bytes, *, topic: str) -> Decoded:
        if data[:1] == CONFLUENT_MAGIC:
            if self._registry is None:
                raise DecodeError(
                    "registry", "Confluent-framed (00), but no schema registry is configured"
                )
            return self._registry.decode_fields(data, topic=topic)
        return self._single.decode_fields(data, topic=topic)
