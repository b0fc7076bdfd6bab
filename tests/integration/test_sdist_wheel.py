"""What agents install: the sdist builds a wheel (the Avro codec compiled from its Cython
source) carrying the contracts, the DDL and the codec's type information. Built from a clone
of HEAD: what is committed, as a release would be."""

from __future__ import annotations

import shutil
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


def test_the_sdist_builds_a_wheel_with_the_compiled_codec(tmp_path: Path) -> None:
    uv = shutil.which("uv")
    assert uv is not None, "make deps installs uv"
    source = tmp_path / "source"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(source)], check=True)
    subprocess.run(
        [uv, "build", "-q", "--out-dir", str(tmp_path / "dist")],
        cwd=source,
        check=True,
        timeout=600,
    )
    [sdist] = (tmp_path / "dist").glob("*.tar.gz")
    [wheel] = (tmp_path / "dist").glob("*.whl")  # built from the sdist, as pip would
    with tarfile.open(sdist) as archive:
        in_sdist = {Path(name).name for name in archive.getnames()}
    assert {"_avro_compiled.pyx", "setup.py"} <= in_sdist
    assert "_avro_compiled.c" not in in_sdist
    in_wheel = zipfile.ZipFile(wheel).namelist()
    assert any(
        n.startswith("fulmen/schemas/_avro_compiled.") and n.endswith(".so") for n in in_wheel
    )
    assert "fulmen/schemas/_avro_compiled.pyi" in in_wheel
    assert "fulmen/schemas/avro/span.avsc" in in_wheel
    assert any(n.startswith("fulmen/schemas/clickhouse/0001_") for n in in_wheel)
