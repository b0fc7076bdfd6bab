"""The local append-only spill: where events wait while the transport cannot take them.

A spill is a directory of segment files. Segment names sort in emit order across process
restarts: `<run start ns>-<first emit index>-<tier>.spill`, where tier `a` holds messages that
failed after they had been handed to the transport (older) and tier `b` those spilled on
arrival (newer). Each record is `[u32 length][u32 crc32][u16 topic length][u32 key
length][topic][key][value]`; a torn tail (the process died mid-write) is detected by the
CRC and ignored.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

_RECORD = struct.Struct("<II")
_LENGTHS = struct.Struct("<HI")

Tier = Literal["a", "b"]


@dataclass(frozen=True)
class SpilledMessage:
    topic: str
    key: bytes
    value: bytes


class SpillFull(Exception):
    """Appending would exceed the spill's byte budget."""


class Spill:
    """Segments under `directory`, at most `max_bytes` in all. Used by one thread."""

    def __init__(self, directory: Path, *, max_bytes: int, run_id: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self._run_id = run_id
        directory.mkdir(parents=True, exist_ok=True)
        self._size = sum(path.stat().st_size for path in self.segments())
        self._open: dict[Path, BinaryIO] = {}

    def segments(self) -> list[Path]:
        """Every segment, oldest first."""
        return sorted(self.directory.glob("*.spill"))

    @property
    def size_bytes(self) -> int:
        return self._size

    def segment_for(self, first_index: int, tier: Tier) -> Path:
        return self.directory / f"{self._run_id:020d}-{first_index:012d}-{tier}.spill"

    def append(self, segment: Path, message: SpilledMessage) -> None:
        topic = message.topic.encode()
        body = _LENGTHS.pack(len(topic), len(message.key)) + topic + message.key + message.value
        if self._size + _RECORD.size + len(body) > self.max_bytes:
            raise SpillFull(f"spill {self.directory} would exceed {self.max_bytes} bytes")
        file = self._open.get(segment)
        if file is None:
            file = self._open[segment] = segment.open("ab")
        file.write(_RECORD.pack(len(body), zlib.crc32(body)) + body)
        file.flush()
        self._size += _RECORD.size + len(body)

    def open_size(self, segment: Path) -> int:
        """Bytes appended so far to `segment` if it is open for appends, else 0."""
        file = self._open.get(segment)
        return 0 if file is None else file.tell()

    def seal(self, segment: Path) -> None:
        """No more appends to `segment`: sync it to disk and close it."""
        file = self._open.pop(segment, None)
        if file is not None:
            os.fsync(file.fileno())
            file.close()

    def read(self, segment: Path) -> Iterator[SpilledMessage]:
        """The intact records of a sealed segment, in append order."""
        data = segment.read_bytes()
        position = 0
        while position + _RECORD.size <= len(data):
            length, crc = _RECORD.unpack_from(data, position)
            body = data[position + _RECORD.size : position + _RECORD.size + length]
            if len(body) < length or zlib.crc32(body) != crc:
                return
            topic_length, key_length = _LENGTHS.unpack_from(body)
            start = _LENGTHS.size
            topic = body[start : start + topic_length].decode()
            key = body[start + topic_length : start + topic_length + key_length]
            yield SpilledMessage(topic, key, body[start + topic_length + key_length :])
            position += _RECORD.size + length

    def remove(self, segment: Path) -> None:
        self.seal(segment)
        if segment.exists():
            self._size -= segment.stat().st_size
            segment.unlink()

    def close(self) -> None:
        for segment in list(self._open):
            self.seal(segment)
