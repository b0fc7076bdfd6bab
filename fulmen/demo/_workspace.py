"""Where a demo run keeps its state: the out dir, cleared of what an earlier run left, and
the chDB store, served so that the trainer jobs (subprocesses) reach it too."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path

from fulmen.store import LightningStore, StoreSettings, shared_store


def fresh_out_dir(out_dir: Path) -> None:
    """Remove what an earlier run left (store, jobs, artifacts, plots)."""
    for name in ("store", "jobs", "artifacts", "windows", "spill", "summary.json", "reward.png"):
        path = out_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)


@contextlib.contextmanager
def served_store(settings: StoreSettings) -> Iterator[LightningStore]:
    """The demo's chDB store, served to the trainer jobs (with a password of its own)."""
    with shared_store(settings) as reachable:
        assert reachable.url is not None
        store = LightningStore(reachable)
        try:
            yield store
        finally:
            store.close()
