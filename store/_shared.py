"""The embedded store shared with other processes: this process serves it over HTTP."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator

from pydantic import SecretStr

from fulmen.store._http_server import StoreServer
from fulmen.store._http_service import StoreUser
from fulmen.store._settings import StoreSettings


@contextlib.contextmanager
def shared_store(settings: StoreSettings) -> Iterator[StoreSettings]:
    """While the block runs, settings that every process can use: for the embedded store
    (no `url`), this process owns `settings.path`, serves it on loopback with `settings`'
    credentials (a fresh random password when `settings` has none) and yields the same
    settings with `url` (and that password) set; settings that name a server come back
    unchanged. Hand them to other processes with :func:`client_env`."""
    if settings.url is not None:
        yield settings
        return
    password = settings.password.get_secret_value() or secrets.token_urlsafe(32)
    users = {settings.username: StoreUser(password)}
    with StoreServer(settings.path, users=users) as server:
        yield settings.model_copy(update={"url": server.url, "password": SecretStr(password)})


def client_env(settings: StoreSettings) -> dict[str, str]:
    """The `FULMEN_STORE__*` variables that give another process `settings`' server
    (`url`, user and password); `settings.url` must be set."""
    if settings.url is None:
        raise ValueError("client_env needs settings that name a store server (url)")
    return {
        "FULMEN_STORE__URL": settings.url,
        "FULMEN_STORE__USERNAME": settings.username,
        "FULMEN_STORE__PASSWORD": settings.password.get_secret_value(),
    }
