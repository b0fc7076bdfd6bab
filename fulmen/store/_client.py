"""One clickhouse-connect client for both targets: embedded chDB or a ClickHouse server."""

from __future__ import annotations

from urllib.parse import urlparse

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from fulmen.store._settings import StoreSettings


def connect(settings: StoreSettings) -> Client:
    """A client for `settings`: the chDB engine in this process on `path` (only one process
    may open it: others go through `fulmen store serve`), or the server at `url`."""
    if settings.url is None:
        settings.path.mkdir(parents=True, exist_ok=True)
        return clickhouse_connect.get_client(dsn=f"chdb://{settings.path.resolve()}")
    url = urlparse(settings.url)
    return clickhouse_connect.get_client(
        host=url.hostname or "127.0.0.1",
        port=url.port or (8443 if url.scheme == "https" else 8123),
        secure=url.scheme == "https",
        username=settings.username,
        password=settings.password.get_secret_value(),
    )
