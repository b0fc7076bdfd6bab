"""Session-wide fixtures.

chDB opens one engine data directory per process, ever: every test that uses the embedded
store shares `chdb_path` and isolates itself with a database of its own.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fulmen.store import LightningStore, StoreSettings


@pytest.fixture(scope="session")
def chdb_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("chdb")


@pytest.fixture(scope="session")
def new_store(chdb_path: Path) -> Iterator[Callable[[], LightningStore]]:
    """Makes stores on the session's chDB engine, each in a fresh database."""
    stores: list[LightningStore] = []

    def make() -> LightningStore:
        database = f"t_{uuid.uuid4().hex[:12]}"
        stores.append(LightningStore(StoreSettings(path=chdb_path, database=database)))
        return stores[-1]

    yield make
    for store in stores:
        store.close()
