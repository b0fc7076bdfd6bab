"""Agent Lightning 0.3.0's store, measured on this machine beside Fulmen's figures.

`agl_figures()` runs the scripts in the shared peers folder (`../shared/peers` from the repository,
or `$FULMEN_PEERS_DIR`) under a virtualenv of their own, cached outside the repository at
`$XDG_CACHE_HOME/fulmen/agl-0.3.0-venv` (default `~/.cache/...`) and reused on later calls.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from rich.console import Console

REQUIREMENTS = ("agentlightning==0.3.0", "opentelemetry-exporter-otlp-proto-http")
_MARKER = "fulmen-installed.txt"  # written only after a successful install
_NUM = r"([\d,]+) spans/s"
# (figure, script, pattern whose group 1 is the figure), the pattern applied to the script's stdout
_FIGURES = (
    ("agl_otlp_spans_per_s", "agl_otlp_bench.py", rf"^OTLP/HTTP protobuf .*?-> {_NUM}"),
    (
        "agl_inmem_batch_spans_per_s",
        "agl_store_bench.py",
        rf"^\[InMemory\(asyncio lock\)\].*?^  add_many_spans \(batch=\d+\): .*?-> {_NUM}",
    ),
)


def _run(cmd: list[str], env: dict[str, str] | None = None) -> str:
    """Run `cmd` with check=True; return its stdout, or raise RuntimeError with the output tail."""
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stdout
    except subprocess.CalledProcessError as e:
        tail = (e.stdout or "")[-2000:] + (e.stderr or "")[-2000:]
        raise RuntimeError(f"{cmd[:3]} exited {e.returncode}; output tail:\n{tail}") from e


def peers_dir() -> Path:
    """The peers folder: `$FULMEN_PEERS_DIR`, else `<repo>/../shared/peers`; it must exist."""
    default = Path(__file__).resolve().parents[2] / "shared" / "peers"
    folder = Path(os.environ.get("FULMEN_PEERS_DIR") or default)
    if not folder.is_dir():
        raise FileNotFoundError(f"peers folder {folder} is missing (set FULMEN_PEERS_DIR)")
    return folder


def agl_python() -> Path:
    """The cached venv's interpreter, (re)creating the venv unless its install marker is there."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    venv = cache / "fulmen" / "agl-0.3.0-venv"
    python, marker = venv / "bin" / "python", venv / _MARKER
    wanted = "\n".join(REQUIREMENTS) + "\n"
    if marker.is_file() and marker.read_text() == wanted and python.exists():
        return python
    with Console(stderr=True).status(f"installing {' '.join(REQUIREMENTS)} into {venv}"):
        _run([sys.executable, "-m", "venv", "--clear", str(venv)])  # --clear: redo a broken one
        _run([str(python), "-m", "pip", "install", "-q", *REQUIREMENTS])
    marker.write_text(wanted)
    return python


def agl_figures() -> dict[str, float]:
    """Spans/s of Agent Lightning 0.3.0's OTLP/HTTP bulk path into LightningStoreServer and of
    InMemoryLightningStore.add_many_spans (100 spans a call), as the peers scripts print them.

    Returns exactly `{"agl_otlp_spans_per_s", "agl_inmem_batch_spans_per_s"}`. Raises
    FileNotFoundError if the peers folder is missing, RuntimeError if an install or a script
    fails or its output does not hold the figure (the message carries the output tail).
    """
    folder, python = peers_dir(), agl_python()
    # N_HTTP/R_HTTP shrink the REST-client section of agl_store_bench.py, which runs after the
    # figure read here and takes a minute at its default size; they change no figure returned.
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "N_HTTP": "200", "R_HTTP": "2"}
    figures: dict[str, float] = {}
    for name, script, pattern in _FIGURES:
        out = _run([str(python), str(folder / script)], env=env)
        match = re.search(pattern, out, re.MULTILINE | re.DOTALL)
        if match is None:
            raise RuntimeError(f"no {name} in {script}'s output; tail:\n{out[-2000:]}")
        figures[name] = float(match.group(1).replace(",", ""))
    return figures
