"""The stream worker's web server answers only requests that carry its bearer token."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def bearer_token_guard(
    token: str,
) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """aiohttp middleware: a request without ``Authorization: Bearer <token>`` gets 401
    (compared in constant time); others reach their handler."""
    expected = f"Bearer {token}".encode()

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        supplied = request.headers.get("Authorization", "").encode()
        if not hmac.compare_digest(supplied, expected):
            return web.Response(
                status=401,
                text="a bearer token is required (Authorization: Bearer <token>)\n",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return await handler(request)

    return guard
