"""Secure by default: a service listens beyond loopback only with API keys."""

from __future__ import annotations

import logging

from fulmen._net import is_loopback
from fulmen.auth._keys import ApiKeys, AuthError

logger = logging.getLogger("fulmen.auth")


def check_exposure(keys: ApiKeys, host: str, *, service: str, env_prefix: str) -> None:
    """Refuse to let `service` listen on `host` beyond loopback without a key.

    Raises:
        AuthError: `host` is not loopback and no key is configured; the message names the
            `<env_prefix>API_KEYS` and `<env_prefix>API_KEY_FILE` settings.
    """
    if not keys.required and not is_loopback(host):
        raise AuthError(
            f"the {service} will not listen on {host} without an API key: set "
            f"{env_prefix}API_KEYS or {env_prefix}API_KEY_FILE, or listen on 127.0.0.1"
        )


def guard_listening(keys: ApiKeys, host: str, *, service: str, env_prefix: str) -> None:
    """`check_exposure`, then a warning when `service` runs open (on loopback, no key):
    called where the service starts listening."""
    check_exposure(keys, host, service=service, env_prefix=env_prefix)
    if not keys.required:
        logger.warning(
            "the fulmen %s runs without an API key on %s: any local process may call it "
            "(set %sAPI_KEYS or %sAPI_KEY_FILE to require one)",
            service,
            host,
            env_prefix,
            env_prefix,
        )
