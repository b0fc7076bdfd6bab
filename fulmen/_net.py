"""Network addresses, as Fulmen's servers judge where they listen."""

from __future__ import annotations

import ipaddress


def is_loopback(host: str) -> bool:
    """Whether `host` is a loopback address (or ``localhost``): reachable from this machine
    only. Anything else (another name, ``0.0.0.0``, ``""``) may be reachable from outside."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name other than localhost, or a wildcard such as ""
        return False
