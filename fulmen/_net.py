"""Network addresses, as Fulmen's servers judge where they listen."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Collection


def is_loopback(host: str) -> bool:
    """Whether `host` is a loopback address (or ``localhost``): reachable from this machine
    only. Anything else (another name, ``0.0.0.0``, ``""``) may be reachable from outside."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name other than localhost, or a wildcard such as ""
        return False


def free_ports(count: int, *, besides: Collection[int] = ()) -> list[int]:
    """`count` distinct TCP ports free on 127.0.0.1 a moment ago, none of `besides`. Every
    socket stays bound until all are chosen: ports picked one after another, each socket
    closed before the next bind, can come back equal (two of `fulmen up`'s services were once
    given the same port)."""
    sockets: list[socket.socket] = []
    ports: list[int] = []
    try:
        while len(ports) < count:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
            if port not in besides:
                ports.append(port)
        return ports
    finally:
        for sock in sockets:
            sock.close()
