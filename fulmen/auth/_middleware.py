"""The ASGI wrapper that turns away requests without a valid API key."""

from __future__ import annotations

from collections.abc import Collection

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from fulmen.auth._keys import ApiKeys

_UNAUTHORIZED = {
    "error": {
        "message": "Incorrect or missing API key: send `Authorization: Bearer <key>` with a "
        "key this service accepts.",
        "type": "invalid_request_error",
        "param": None,
        "code": "invalid_api_key",
    }
}


class RequireApiKey:
    """Passes an HTTP request on to `app` when its `Authorization: Bearer <key>` header
    carries one of `keys`, or its path is one of `open_paths` (health checks); answers
    anything else with 401, OpenAI's error body (`code` `invalid_api_key`) and
    `WWW-Authenticate: Bearer`. Other ASGI scopes (lifespan) pass through."""

    def __init__(self, app: ASGIApp, *, keys: ApiKeys, open_paths: Collection[str] = ()) -> None:
        self._app = app
        self._keys = keys
        self._open = frozenset(open_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self._open or self._authorized(scope):
            await self._app(scope, receive, send)
            return
        response = JSONResponse(
            _UNAUTHORIZED, status_code=401, headers={"www-authenticate": "Bearer"}
        )
        await response(scope, receive, send)

    def _authorized(self, scope: Scope) -> bool:
        for name, value in scope["headers"]:
            if name == b"authorization":
                return self._keys.accepts_header(value.decode("latin-1"))
        return False
