"""The embedded store shared with other processes: this process serves it over HTTP."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from fulmen.store._http_server import StoreServer
from fulmen.store._http_service import StoreUser
from fulmen.store._settings import StoreSettings


@contextlib.contextmanager
def shared_store(settings: StoreSettings) -> Iterator[StoreSettings]:
    """While the block runs, settings that every process can use: for the embedded store
    (no `url`), this process owns `settings.path`, serves it with `settings`' credentials
    and yields the same settings with `url` set to the server; settings that name a server
    come back unchanged."""
    if settings.url is not None:
        yield settings
        return
    users = {settings.username: StoreUser(settings.password.get_secret_value())}
    with StoreServer(settings.path, users=users) as server:
        yield settings.model_copy(update={"url": server.url})
