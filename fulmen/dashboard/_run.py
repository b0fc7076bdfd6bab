"""Running the dashboard with uvicorn: in the foreground (`fulmen dashboard`), or in a
background thread on a free port (tests, notebooks)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import uvicorn
from starlette.applications import Starlette

from fulmen.dashboard._errors import DashboardError

_START_TIMEOUT_S = 30.0


def serve(app: Starlette, *, host: str = "127.0.0.1", port: int = 8600) -> None:
    """Serve `app` until interrupted (Ctrl-C / SIGTERM)."""
    uvicorn.Server(uvicorn.Config(app, host=host, port=port, lifespan="off")).run()


@contextlib.contextmanager
def serve_in_thread(app: Starlette, *, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve `app` in a daemon thread while the block runs; yield its base URL
    (`http://host:port`, port 0 picks a free one). Raises `DashboardError` if the server
    did not start within 30 s."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="fulmen-dashboard", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise DashboardError(f"the dashboard did not start on {host}:{bound}")
            time.sleep(0.01)
        yield f"http://{host}:{bound}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
