"""Directories built once into the model cache: atomically, and once even when processes race.

Contract of :func:`build_once`:

* The result is ``<model_cache_dir()>/<name>``; when it exists it is complete (it only ever
  appears by ``rename`` of a finished temporary directory), and the call returns at once.
* Otherwise the builder writes into an empty temporary directory next to it, under an
  exclusive ``flock`` on ``<cache>/.<name>.lock``; a process that waited for the lock finds
  the finished directory and does not build again. A failed build leaves no directory, and
  the scratch directory of a killed builder is removed by the next build.
* Deleting ``<model_cache_dir()>/<name>`` forces a rebuild on the next call.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from fulmen.local import cache_dir

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

__all__ = ["build_once", "model_cache_dir"]


def model_cache_dir() -> Path:
    """Return the model cache: ``$FULMEN_MODEL_CACHE`` if set and non-empty, else
    ``<fulmen cache>/models`` (``~/.cache/fulmen/models`` unless ``$FULMEN_CACHE_DIR`` moves
    it). The directory is not created."""
    configured = os.environ.get("FULMEN_MODEL_CACHE")
    if configured:
        return Path(configured).expanduser()
    return cache_dir() / "models"


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing) for the block."""
    with path.open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def build_once(name: str, build: Callable[[Path], None]) -> Path:
    """Return ``<model_cache_dir()>/<name>``, calling ``build(empty_dir)`` first if it is missing.

    ``build`` fills the directory it is given; whatever it raises propagates, after its
    temporary directory is removed.
    """
    root = model_cache_dir()
    target = root / name
    if target.is_dir():
        return target
    root.mkdir(parents=True, exist_ok=True)
    with _file_lock(root / f".{name}.lock"):
        if target.is_dir():  # another process built it while we waited for the lock
            return target
        for stale in root.glob(f".{name}.*.tmp"):  # left by a builder that was killed
            shutil.rmtree(stale, ignore_errors=True)
        scratch = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=root))
        try:
            build(scratch)
            scratch.rename(target)
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
    return target
