"""The gateway's client of the upstream model server (over `_http1`'s pool), and what
passes between it and the agent: headers (hop-by-hop ones and the gateway's own removed),
URLs, and the gateway's own error answers (OpenAI's error shape) when the upstream cannot
be reached.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping

from starlette.responses import JSONResponse

from fulmen.errors import FulmenError
from fulmen.producers.gateway._http1 import HttpError, Pool, ReadTimeout, Response
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
# The gateway has the whole body before it forwards it: nothing for `expect` to wait for.
_NOT_FORWARDED = (
    _HOP_BY_HOP
    | FULMEN_HEADERS
    | {
        "host",
        "content-length",
        "accept-encoding",
        "expect",
    }
)
# The agent's key is the gateway's; the upstream gets its own (`upstream_api_key`).
_NOT_FORWARDED_WITH_KEY = _NOT_FORWARDED | {"authorization"}
_NOT_RETURNED = frozenset(
    name.encode() for name in _HOP_BY_HOP | {"content-length", "content-encoding"}
)


class UpstreamError(FulmenError):
    """The upstream could not be reached, broke the connection, or did not answer in time
    (`timeout`); `str()` says which, with the client's own error."""

    def __init__(self, message: str, *, timeout: bool) -> None:
        super().__init__(message)
        self.timeout = timeout


class UpstreamResponse:
    """An upstream answer whose status and headers have arrived; the body is read whole
    (`read`) or relayed as it arrives (`chunks`). `close` releases the connection: back to
    the pool once the body was read to its end, else closed."""

    def __init__(self, response: Response) -> None:
        self._response = response

    @property
    def status(self) -> int:
        return self._response.status

    @property
    def is_stream(self) -> bool:
        """A server-sent event stream (a streamed completion)."""
        for name, value in self._response.headers:
            if name.lower() == b"content-type":
                return value.startswith(b"text/event-stream")
        return False

    def headers(self) -> list[tuple[bytes, bytes]]:
        """The headers to give the agent (lower-case names, repeated ones included)."""
        return [
            (name.lower(), value)
            for name, value in self._response.headers
            if name.lower() not in _NOT_RETURNED
        ]

    async def read(self) -> bytes:
        """The whole body. Raises `UpstreamError` when the upstream breaks it off."""
        try:
            return await self._response.read()
        except HttpError as exc:
            raise _failure("the upstream response broke", exc) from exc

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives, each read as soon as it is there. Raises `UpstreamError`
        when the upstream breaks the stream off or stalls beyond the read timeout."""
        try:
            async for chunk in self._response.chunks():
                yield chunk
        except HttpError as exc:
            raise _failure("the upstream stream broke", exc) from exc

    def close(self) -> None:
        self._response.release()


class UpstreamClient:
    """A pool of at most `upstream_connections` kept-alive connections, used on the serving
    event loop (the gateway app's lifespan closes it). Responses are asked for uncompressed
    (the gateway reads them, and relays them to the agent as they were); redirects and
    cookies are the agent's business, so neither is followed nor kept. Every request
    carries `upstream_api_key` as `Authorization: Bearer <key>` when it is set."""

    def __init__(self, settings: GatewaySettings) -> None:
        key = settings.upstream_api_key
        self._auth = [("authorization", f"Bearer {key.get_secret_value()}")] if key else []
        self._pool = Pool(
            settings.upstream_url,
            limit=settings.upstream_connections,
            connect_timeout_s=settings.upstream_connect_timeout_s,
            read_timeout_s=settings.upstream_read_timeout_s,
        )

    async def send(
        self, method: str, path: str, query: str, headers: list[tuple[str, str]], body: bytes
    ) -> UpstreamResponse:
        """Send a request to `path` (relative to the upstream's base URL) with the agent's
        `query` string as it came; returns once the status and headers arrived.

        Raises:
            UpstreamError: the upstream cannot be reached or does not answer in time.
        """
        target = self._pool.base_path + path + (f"?{query}" if query else "")
        try:
            response = await self._pool.request(
                method, target, [*headers, *self._auth, ("accept-encoding", "identity")], body
            )
        except HttpError as exc:
            raise _failure("the upstream cannot be reached", exc) from exc
        return UpstreamResponse(response)

    async def close(self) -> None:
        self._pool.close()


def _failure(what: str, exc: HttpError) -> UpstreamError:
    # A read timeout is the upstream not answering in time; a connect timeout (or no free
    # pooled connection in time) is the upstream not being reachable.
    return UpstreamError(f"{what}: {exc}", timeout=isinstance(exc, ReadTimeout))


def upstream_path(rest: str) -> str | None:
    """`v1/chat/completions` → `chat/completions`, relative to the upstream's base URL
    (which ends in `/v1`); None for a path outside the OpenAI API."""
    if rest == "v1":
        return ""
    return rest[3:] if rest.startswith("v1/") else None


def forwarded_headers(
    headers: Iterable[tuple[str, str]], *, client_key: bool = False
) -> list[tuple[str, str]]:
    """The agent's request headers to send upstream (lower-case names); its `Authorization`
    header only with `client_key` (`GatewaySettings.forward_client_key`)."""
    dropped = _NOT_FORWARDED if client_key else _NOT_FORWARDED_WITH_KEY
    return [(name, value) for name, value in headers if name.lower() not in dropped]


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


def unreachable(error: UpstreamError) -> JSONResponse:
    """504 when the upstream did not answer in time, else 502."""
    if error.timeout:
        return gateway_error(504, str(error), code="timeout")
    return gateway_error(502, str(error), code="bad_gateway")
