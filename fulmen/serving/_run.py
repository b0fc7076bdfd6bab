"""Running a :class:`PolicyServer` over HTTP with uvicorn: in the foreground, or in a
background thread on a free port (tests, notebooks, the embedded default)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from typing import TYPE_CHECKING

from fulmen.auth import ApiKeys, guard_listening
from fulmen.serving._app import create_app
from fulmen.serving._errors import ServingError

if TYPE_CHECKING:
    from collections.abc import Iterator

    from fulmen.serving._policy import PolicyServer

__all__ = ["serve", "serve_in_thread"]

_START_TIMEOUT_S = 30.0
_GRACEFUL_SHUTDOWN_S = 5


def serve(
    server: PolicyServer,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    access_log: bool = True,
    keys: ApiKeys | None = None,
) -> None:
    """Serve until interrupted (Ctrl-C / SIGTERM), logging like uvicorn does; without
    `access_log`, no line per request (a tenth of the event loop's CPU on a small model).
    With `keys`, requests need one (see :func:`create_app`).

    Raises:
        AuthError: `host` is not loopback and no key is required.
    """
    import uvicorn

    keys = _exposed(keys, host)
    config = uvicorn.Config(
        create_app(server, keys=keys),
        host=host,
        port=port,
        access_log=access_log,
        lifespan="off",
        timeout_graceful_shutdown=_GRACEFUL_SHUTDOWN_S,
    )
    uvicorn.Server(config).run()


@contextlib.contextmanager
def serve_in_thread(
    server: PolicyServer,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    keys: ApiKeys | None = None,
) -> Iterator[str]:
    """Serve in a daemon thread while the block runs; yield the OpenAI base URL,
    ``http://<host>:<port>/v1``. ``port`` 0 picks a free one. On exit the server stops
    (open streams get a few seconds to finish). With `keys`, requests need one.

    Raises:
        AuthError: `host` is not loopback and no key is required.
        ServingError: the server did not start within 30 s.
    """
    import uvicorn

    keys = _exposed(keys, host)

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound_port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_app(server, keys=keys),
        log_level="warning",
        lifespan="off",
        timeout_graceful_shutdown=_GRACEFUL_SHUTDOWN_S,
    )
    uv_server = uvicorn.Server(config)
    thread = threading.Thread(
        target=uv_server.run, kwargs={"sockets": [sock]}, name="fulmen-policy-server", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not uv_server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise ServingError(f"the policy server did not start on {host}:{bound_port}")
            time.sleep(0.01)
        authority = f"[{host}]" if family == socket.AF_INET6 else host
        yield f"http://{authority}:{bound_port}/v1"
    finally:
        uv_server.should_exit = True
        thread.join(_GRACEFUL_SHUTDOWN_S + 5)
        sock.close()


def _exposed(keys: ApiKeys | None, host: str) -> ApiKeys:
    keys = keys or ApiKeys()
    guard_listening(keys, host, service="policy server", env_prefix="FULMEN_SERVE_")
    return keys
