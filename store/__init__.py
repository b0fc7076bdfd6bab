"""The LightningStore on ClickHouse: migrations, columnar writes, trainer windows and
snapshots, over one clickhouse-connect code path (embedded chDB or a ClickHouse server)."""

from fulmen.store._client import StoreUnavailable, connect
from fulmen.store._conform import BatchRejected
from fulmen.store._event_rows import EVENT_TABLES, Source
from fulmen.store._forget import ForgetError, Forgotten
from fulmen.store._http_server import StoreServer, StoreServerError, serve
from fulmen.store._http_service import StoreUser
from fulmen.store._migrations import MigrationError, migrate
from fulmen.store._settings import StoreSettings, TableTtl
from fulmen.store._shared import client_env, shared_store
from fulmen.store._store import LightningStore, Snapshot, WindowQuery, content_hash
from fulmen.store._table_schemas import TABLES

__all__ = [
    "EVENT_TABLES",
    "TABLES",
    "BatchRejected",
    "ForgetError",
    "Forgotten",
    "LightningStore",
    "MigrationError",
    "Snapshot",
    "Source",
    "StoreServer",
    "StoreServerError",
    "StoreSettings",
    "StoreUnavailable",
    "StoreUser",
    "TableTtl",
    "WindowQuery",
    "client_env",
    "connect",
    "content_hash",
    "migrate",
    "serve",
    "shared_store",
]
