"""The one HTTP client to the upstream model server, and what passes between it and the
agent: headers (hop-by-hop ones and the gateway's own removed), URLs, and the gateway's
own error answers (OpenAI's error shape) when the upstream cannot be reached."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import httpx
from starlette.responses import JSONResponse

from fulmen.producers.gateway._identity import FULMEN_HEADERS
from fulmen.producers.gateway._settings import GatewaySettings

_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
_NOT_FORWARDED = _HOP_BY_HOP | FULMEN_HEADERS | {"host", "content-length", "accept-encoding"}
_NOT_RETURNED = _HOP_BY_HOP | {"content-length", "content-encoding"}


def upstream_client(settings: GatewaySettings) -> httpx.AsyncClient:
    """A pooled client with bounded connections; responses are asked for uncompressed (the
    gateway reads them, and relays them to the agent as they were)."""
    connections = settings.upstream_connections
    return httpx.AsyncClient(
        base_url=settings.upstream_url.rstrip("/") + "/",
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        timeout=httpx.Timeout(
            connect=settings.upstream_connect_timeout_s,
            read=settings.upstream_read_timeout_s,
            write=settings.upstream_read_timeout_s,
            pool=settings.upstream_connect_timeout_s,
        ),
        headers={"accept-encoding": "identity"},
        follow_redirects=False,
    )


def upstream_path(rest: str) -> str | None:
    """`v1/chat/completions` → `chat/completions`, relative to the upstream's base URL
    (which ends in `/v1`); None for a path outside the OpenAI API."""
    if rest == "v1":
        return ""
    return rest[3:] if rest.startswith("v1/") else None


def forwarded_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The agent's request headers to send upstream (lower-case names)."""
    return [(name, value) for name, value in headers if name.lower() not in _NOT_FORWARDED]


def returned_headers(headers: httpx.Headers) -> list[tuple[bytes, bytes]]:
    """The upstream's response headers to give the agent, repeated ones included."""
    return [
        (name.lower(), value)
        for name, value in headers.raw
        if name.decode("latin-1").lower() not in _NOT_RETURNED
    ]


def gateway_error(
    status: int,
    message: str,
    *,
    code: str,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """An answer of the gateway itself, in OpenAI's error shape."""
    body = {"error": {"message": message, "type": "gateway_error", "param": None, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


def unreachable(exc: httpx.HTTPError) -> JSONResponse:
    """502 when the upstream could not be reached or broke the connection, 504 when it did
    not answer in time."""
    if isinstance(exc, httpx.TimeoutException) and not isinstance(exc, httpx.ConnectTimeout):
        return gateway_error(504, f"the upstream did not answer in time: {exc!r}", code="timeout")
    return gateway_error(502, f"the upstream cannot be reached: {exc!r}", code="bad_gateway")
