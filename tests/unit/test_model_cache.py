"""Build-once cache entries (fulmen.models._cache): atomic, once under races, clean on failure."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from fulmen.models import model_cache_dir
from fulmen.models._cache import build_once


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FULMEN_MODEL_CACHE", str(tmp_path / "models"))
    return tmp_path / "models"


def test_the_cache_directory_follows_the_environment(
    cache: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert model_cache_dir() == cache
    monkeypatch.delenv("FULMEN_MODEL_CACHE")
    monkeypatch.setenv("FULMEN_CACHE_DIR", str(tmp_path / "fulmen"))
    assert model_cache_dir() == tmp_path / "fulmen" / "models"


def test_racing_callers_build_once_and_see_a_complete_directory(cache: Path) -> None:
    builds: list[Path] = []

    def build(scratch: Path) -> None:
        builds.append(scratch)
        time.sleep(0.2)  # long enough for every other thread to reach the lock
        (scratch / "weights").write_text("done")

    results: list[Path] = []
    threads = [
        threading.Thread(target=lambda: results.append(build_once("m", build))) for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(builds) == 1
    assert results == [cache / "m"] * 4
    assert (cache / "m" / "weights").read_text() == "done"
    assert build_once("m", build) == cache / "m"
    assert len(builds) == 1


def test_a_failed_build_leaves_nothing_behind(cache: Path) -> None:
    def build(scratch: Path) -> None:
        (scratch / "half").write_text("written")
        raise RuntimeError("conversion failed")

    with pytest.raises(RuntimeError, match="conversion failed"):
        build_once("m", build)
    assert [p.name for p in cache.iterdir() if not p.name.endswith(".lock")] == []
    assert build_once("m", lambda scratch: (scratch / "ok").touch()) == cache / "m"


def test_a_killed_builder_s_scratch_directory_is_removed(cache: Path) -> None:
    cache.mkdir(parents=True)
    (cache / ".m.abc123.tmp").mkdir()
    build_once("m", lambda scratch: (scratch / "ok").touch())
    assert sorted(p.name for p in cache.iterdir()) == [".m.lock", "m"]
