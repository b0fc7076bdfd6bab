"""Running a gateway over HTTP with uvicorn: in the foreground (`fulmen gateway`), or in a
background thread on a free port (tests, benchmarks)."""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Iterator

import uvicorn

from fulmen.auth import AuthError, guard_listening
from fulmen.errors import FulmenError
from fulmen.producers._producer import Producer, transport_for
from fulmen.producers._settings import FulmenSettings
from fulmen.producers.gateway._app import Gateway
from fulmen.producers.gateway._coalesce import CoalescingHttpToolsProtocol
from fulmen.producers.gateway._settings import GatewaySettings
from fulmen.producers.transport import InProcessBus

logger = logging.getLogger("fulmen.gateway")

_START_TIMEOUT_S = 30.0
_GRACEFUL_SHUTDOWN_S = 5


class GatewayError(FulmenError):
    """The gateway could not start."""


def open_gateway(
    settings: GatewaySettings | None = None,
    fulmen_settings: FulmenSettings | None = None,
    *,
    bus: InProcessBus | None = None,
) -> Gateway:
    """A gateway with a producer of its own (`fulmen_settings`, default: the environment's
    `FULMEN_*`), following the control topic when `producer.follow_versions` says so: it
    returns once the versions already published are applied, or after
    `producer.follow_startup_timeout_s` (with a warning)."""
    fulmen_settings = fulmen_settings or FulmenSettings()
    producer = Producer(fulmen_settings, transport=transport_for(fulmen_settings, bus=bus))
    try:
        gateway = Gateway(settings or GatewaySettings(), producer)
    except AuthError:
        producer.close()
        raise
    config = fulmen_settings.producer
    if config.follow_versions and not gateway.follow_versions(config.follow_startup_timeout_s):
        logger.warning(
            "the fulmen gateway has not read the control topic within %s s; going on with "
            "the settings' versions until it has",
            config.follow_startup_timeout_s,
        )
    return gateway


def _guard_listening(gateway: Gateway, host: str) -> None:
    guard_listening(gateway.keys, host, service="gateway", env_prefix="FULMEN_GATEWAY_")


def _config(
    gateway: Gateway, *, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info"
) -> uvicorn.Config:
    # The upstream's Date and Server headers are relayed, not uvicorn's. httptools (each answer
    # sent in one write, `_coalesce`) and uvloop rather than uvicorn's pure-Python defaults:
    # each request costs the proxy less CPU, which on a proxy is latency (docs/gateway.md).
    # No access log: a line per call costs as much.
    return uvicorn.Config(
        gateway.app(),
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        http=CoalescingHttpToolsProtocol,
        loop="uvloop",
        lifespan="on",
        server_header=False,
        date_header=False,
        timeout_graceful_shutdown=_GRACEFUL_SHUTDOWN_S,
    )


def serve_gateway(gateway: Gateway, *, host: str, port: int) -> None:
    """Serve until interrupted (Ctrl-C / SIGTERM); then deliver or spill what was recorded.

    Raises:
        AuthError: `host` is not loopback and the gateway has no API key.
    """
    try:
        _guard_listening(gateway, host)
        uvicorn.Server(_config(gateway, host=host, port=port)).run()
    finally:
        gateway.close()


@contextlib.contextmanager
def gateway_in_thread(gateway: Gateway, *, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve in a daemon thread while the block runs; yield the gateway's root URL,
    `http://<host>:<port>` (agents append `/v1`, or a rollout prefix and `/v1`). `port` 0
    picks a free one. On exit the server stops; the gateway itself is not closed.

    Raises:
        AuthError: `host` is not loopback and the gateway has no API key.
        GatewayError: the server did not start within 30 s.
    """
    _guard_listening(gateway, host)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound_port = sock.getsockname()[1]
    server = uvicorn.Server(_config(gateway, log_level="warning"))
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="fulmen-gateway", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise GatewayError(f"the gateway did not start on {host}:{bound_port}")
            time.sleep(0.01)
        yield f"http://{host}:{bound_port}"
    finally:
        server.should_exit = True
        thread.join(_GRACEFUL_SHUTDOWN_S + 5)
        sock.close()
