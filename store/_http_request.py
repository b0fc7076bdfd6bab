"""What a ClickHouse HTTP request carries besides its SQL: the body's Content-Encoding, form
fields, and the Content-Type each output format answers with."""

from __future__ import annotations

import gzip
import zlib
from email.parser import BytesParser
from email.policy import HTTP as HTTP_POLICY

from fulmen.store._http_engine import ClickHouseError

_CONTENT_TYPES: tuple[tuple[str, str], ...] = (
    ("TabSeparated", "text/tab-separated-values; charset=UTF-8"),
    ("TSV", "text/tab-separated-values; charset=UTF-8"),
    ("CSVWithNames", "text/csv; charset=UTF-8; header=present"),
    ("CSV", "text/csv; charset=UTF-8; header=absent"),
    ("JSON", "application/json; charset=UTF-8"),
    ("XML", "application/xml; charset=UTF-8"),
    ("Pretty", "text/plain; charset=UTF-8"),
    ("Vertical", "text/plain; charset=UTF-8"),
    ("Markdown", "text/markdown; charset=UTF-8"),
    ("Values", "text/plain; charset=UTF-8"),
    ("Raw", "text/plain; charset=UTF-8"),
    ("LineAsString", "text/plain; charset=UTF-8"),
)


def content_type(fmt: str) -> str:
    for prefix, content_type in _CONTENT_TYPES:
        if fmt.startswith(prefix):
            return content_type
    return "application/octet-stream"


def decode_body(body: bytes, encoding: str) -> bytes:
    """Undo a request's Content-Encoding (what clickhouse-connect sends: lz4, zstd, …)."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    try:
        if encoding in ("gzip", "x-gzip"):
            return gzip.decompress(body)
        if encoding == "deflate":
            return zlib.decompress(body)
        if encoding == "lz4":
            import lz4.frame  # type: ignore[import-untyped]  # lz4 ships no type stubs

            decoded: bytes = lz4.frame.decompress(body)
            return decoded
        if encoding == "zstd":
            from backports import zstd  # the zstd module clickhouse-connect uses

            return zstd.decompress(body)
    except Exception as exc:
        message = f"Cannot decompress the request body ({encoding}): {exc}"
        raise ClickHouseError(271, "CANNOT_DECOMPRESS", message) from exc
    raise ClickHouseError(
        48, "NOT_IMPLEMENTED", f"Unknown Content-Encoding of the request body: {encoding}"
    )


def form_fields(body: bytes, content_type: str) -> dict[str, str]:
    """The text fields of a multipart/form-data body (query and ``param_*``)."""
    head = f"Content-Type: {content_type}\r\n\r\n".encode()
    message = BytesParser(policy=HTTP_POLICY).parsebytes(head + body)
    fields: dict[str, str] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        if part.get_filename() is not None:
            raise ClickHouseError(
                48, "NOT_IMPLEMENTED", "External data (temporary tables) is not supported"
            )
        payload = part.get_payload(decode=True)
        fields[name] = payload.decode() if isinstance(payload, bytes) else ""
    return fields
