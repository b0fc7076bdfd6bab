"""A schema registry speaking the part of Confluent's REST API that confluent-kafka's
client uses to register and fetch Avro schemas: enough to test the Confluent wire format
against the real client without a registry server."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_REGISTER = re.compile(r"^/subjects/([^/?]+)/versions")
_BY_ID = re.compile(r"^/schemas/ids/(\d+)")


class _Registry:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ids: dict[str, int] = {}
        self.schemas: dict[int, str] = {}
        self.subjects: dict[str, list[int]] = {}

    def register(self, subject: str, schema: str) -> int:
        with self.lock:
            schema_id = self.ids.setdefault(schema, len(self.ids) + 1)
            self.schemas[schema_id] = schema
            versions = self.subjects.setdefault(subject, [])
            if schema_id not in versions:
                versions.append(schema_id)
            return schema_id


def _handler(registry: _Registry) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            match = _REGISTER.match(self.path)
            if match is None:
                self._answer(404, {"error_code": 404, "message": f"no route {self.path}"})
                return
            self._answer(200, {"id": registry.register(match.group(1), body["schema"])})

        def do_GET(self) -> None:
            match = _BY_ID.match(self.path)
            schema = registry.schemas.get(int(match.group(1))) if match else None
            if schema is None:
                self._answer(404, {"error_code": 40403, "message": "Schema not found"})
                return
            self._answer(200, {"schema": schema})

        def _answer(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            del format, args

    return Handler


@contextmanager
def schema_registry() -> Iterator[str]:
    """A registry on a free loopback port for the `with` block; yields its URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(_Registry()))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
