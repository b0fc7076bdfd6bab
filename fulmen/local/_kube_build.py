"""Kubernetes' own binaries, built once from the Go module proxy into a cache outside the clone.

The tests of the trainer scheduler and of ``k8s/`` talk to a real control plane (envtest
style): etcd, kube-apiserver, kube-controller-manager and kube-scheduler, plus kwok to fake
a node so that Job pods really run to completion. No release download is needed: each is
built from source modules with the Go toolchain.

* ``k8s.io/kubernetes`` cannot be ``go install``-ed: its go.mod requires its staging
  modules (``k8s.io/api`` …) at ``v0.0.0`` through local replace directives. A wrapper
  module requires it and replaces each such staging module by its published ``v0.<minor>``
  release; the version is stamped into the binaries with ``-X`` ldflags.
* etcd's ``go.etcd.io/etcd/server/v3`` module root is a ``main`` package: built through a
  second wrapper module.
* kwok is a clean module: ``go install …@version``.

Builds run at ``nice -n 19`` on every core (``FULMEN_GO_BUILD_JOBS`` lowers that), link
with ``-s -w`` to keep the linker's memory low, and log to ``build.log`` beside ``bin/``.
Standard library only (and Fulmen's root error); importing this module has no side effects.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from fulmen.errors import FulmenError
from fulmen.local._jvm import _file_lock, _marker_ok, _write_atomic, cache_dir

__all__ = [
    "ETCD_VERSION",
    "KUBE_BINARIES",
    "KUBE_VERSION",
    "KWOK_VERSION",
    "KubeBuildError",
    "ensure_kube_binaries",
    "kube_bin_dir",
    "kwok_stages_file",
]

KUBE_VERSION = "1.36.3"
"""The Kubernetes release whose control plane the tests run."""
ETCD_VERSION = "3.6.16"
KWOK_VERSION = "0.8.0"

KUBE_BINARIES = (
    "etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "kwok",
)  # fmt: skip
"""The executables that :func:`ensure_kube_binaries` leaves in :func:`kube_bin_dir`."""

_MARKER_NAME = ".complete"
_GO_FALLBACK = Path("/usr/local/go/bin/go")
_LOG_TAIL_BYTES = 6000
_KUBE_COMMANDS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
_KWOK_STAGES = (
    "node/fast/node-initialize.yaml",
    "node/heartbeat/node-heartbeat.yaml",
    "pod/fast/pod-ready.yaml",
    "pod/general/pod-complete.yaml",
    "pod/fast/pod-delete.yaml",
    "pod/chaos/pod-container-running-failed.yaml",
)
"""kwok's own Stages that the test cluster runs: nodes become Ready; pods go Running, then
Succeeded when a Job owns them (after the `pod-complete.stage.kwok.x-k8s.io/delay`
annotation's duration, else 1 to 6 s), or Failed when labelled
`pod-container-running-failed.stage.kwok.x-k8s.io: "true"` (exit code, reason and message
from that Stage's annotations); deleted pods go."""
_STAGING_REQUIREMENT = re.compile(r"^\s*(k8s\.io/[\w.\-/]+)\s+v0\.0\.0\s*$", re.MULTILINE)


class KubeBuildError(FulmenError):
    """The Go toolchain is missing or one of the builds failed (the log tail is attached)."""


def kube_bin_dir() -> Path:
    """Where the binaries are (or will be): ``<cache_dir()>/k8s-<version>/bin``."""
    return _home() / "bin"


def kwok_stages_file() -> Path:
    """kwok's Stages (see `_KWOK_STAGES`), one YAML stream, written beside ``bin/``."""
    return _home() / "kwok-stages.yaml"


def _home() -> Path:
    return cache_dir() / f"k8s-{KUBE_VERSION}"


def _digest() -> str:
    return (
        f"kubernetes={KUBE_VERSION} etcd={ETCD_VERSION} kwok={KWOK_VERSION} "
        f"commands={','.join(_KUBE_COMMANDS)}"
    )


def _jobs() -> int:
    """Parallel compile jobs: ``FULMEN_GO_BUILD_JOBS``, else every core."""
    return int(os.environ.get("FULMEN_GO_BUILD_JOBS", "0")) or os.cpu_count() or 1


def _go() -> str:
    go = shutil.which("go") or (
        "/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").is_file() else None
    )
    if go is None:
        raise KubeBuildError("the Go toolchain ('go', 1.26+) is not on PATH nor in /usr/local/go")
    return go


def ensure_kube_binaries() -> Path:
    """Build the control plane's binaries once and return the directory that holds them.

    Contract:

    * The binaries named in :data:`KUBE_BINARIES` land in :func:`kube_bin_dir`, and kwok's
      Stages in :func:`kwok_stages_file`.
    * Idempotent: a marker naming the versions is written last; when it matches, the call
      only reads one small file. Another version set builds into its own directory.
    * Resumable: each of the three builds leaves its own marker, so a build interrupted
      after kube-apiserver & co. goes on with etcd and kwok.
    * Safe across processes: the build runs under an exclusive file lock.
    * Slow the first time (tens of minutes on 2 busy cores); prints one line to stderr, and
      the build's output goes to ``build.log`` beside ``bin/``.

    Raises:
        KubeBuildError: no Go toolchain, or a build failed.
    """
    home = _home()
    bin_dir = home / "bin"
    marker = home / _MARKER_NAME
    if _marker_ok(marker, _digest()) and kwok_stages_file().is_file():
        return bin_dir
    with _file_lock(home / ".lock"):
        if _marker_ok(marker, _digest()) and kwok_stages_file().is_file():
            return bin_dir
        builder = _Builder(_go(), home)
        bin_dir.mkdir(parents=True, exist_ok=True)
        log = home / "build.log"
        print(
            f"fulmen: building Kubernetes {KUBE_VERSION}, etcd {ETCD_VERSION} and kwok "
            f"{KWOK_VERSION} from the Go module proxy into {bin_dir} (once; log: {log}) ...",
            file=sys.stderr,
            flush=True,
        )
        for step in (builder.kubernetes, builder.kwok, builder.etcd):
            step_marker = home / f".{step.__name__}.complete"
            if not _marker_ok(step_marker, _digest()):
                step()
                _write_atomic(step_marker, f"{_digest()}\n".encode())
        builder.kwok_stages()
        missing = [name for name in KUBE_BINARIES if not (bin_dir / name).is_file()]
        if missing:
            raise KubeBuildError(f"the build finished but {missing} are not in {bin_dir}")
        _write_atomic(marker, f"{_digest()}\n".encode())
    return bin_dir


class _Builder:
    """The builds, each a few ``go`` commands in a wrapper module of its own.

    etcd's and kwok's wrapper modules start from Kubernetes' module graph, so the packages
    they share with it (client-go, apimachinery, api, …, at the same versions) come out of
    the Go build cache instead of being compiled again.
    """

    def __init__(self, go: str, home: Path) -> None:
        self._go = go
        self._home = home
        self._bin = home / "bin"

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            GOMAXPROCS=str(_jobs()),
            GOFLAGS="-trimpath -mod=mod",
            GOTOOLCHAIN="local",
            CGO_ENABLED="0",
        )
        env["PATH"] = f"{Path(self._go).parent}{os.pathsep}{env.get('PATH', '')}"
        return env

    def _run(self, *args: str, cwd: Path) -> str:
        command = ["nice", "-n", "19", self._go, *args]
        log_path = self._home / "build.log"
        with log_path.open("a") as log:
            log.write(f"$ (cd {cwd}) {' '.join(command)}\n")
            log.flush()
            completed = subprocess.run(
                command,
                cwd=cwd,
                env=self._env(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                check=False,
            )
            log.write(completed.stdout)
        if completed.returncode != 0:
            tail = log_path.read_text(errors="replace")[-_LOG_TAIL_BYTES:]
            raise KubeBuildError(
                f"'go {' '.join(args)}' failed (exit {completed.returncode}):\n{tail}"
            )
        return completed.stdout

    def _module(self, name: str, go_mod: str, go_sum: str = "") -> Path:
        module = self._home / "src" / name
        module.mkdir(parents=True, exist_ok=True)
        (module / "go.mod").write_text(go_mod)
        (module / "go.sum").write_text(go_sum)
        return module

    def _download(self, module_at_version: str) -> dict[str, str]:
        found: dict[str, str] = json.loads(
            self._run("mod", "download", "-json", module_at_version, cwd=self._home)
        )
        return found

    def _build(self, module: Path, ldflags: str, *packages: str, output: str) -> None:
        jobs = str(_jobs())
        self._run("build", "-p", jobs, "-ldflags", ldflags, "-o", output, *packages, cwd=module)

    def kubernetes(self) -> None:
        upstream = Path(self._download(f"k8s.io/kubernetes@v{KUBE_VERSION}")["GoMod"]).read_text()
        staging = sorted(set(_STAGING_REQUIREMENT.findall(upstream)))
        minor = KUBE_VERSION.split(".", 1)[1]
        replaces = "\n".join(f"\t{m} => {m} v0.{minor}" for m in staging)
        module = self._module(
            "kubernetes",
            f"module fulmen.local/kubernetes\n\ngo 1.26\n\nreplace (\n{replaces}\n)\n",
        )
        packages = [f"k8s.io/kubernetes/cmd/{name}" for name in _KUBE_COMMANDS]
        self._run("get", *(f"{p}@v{KUBE_VERSION}" for p in packages), cwd=module)
        major, minor_number = KUBE_VERSION.split(".")[:2]
        stamps = []
        for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
            stamps += [
                f"-X {package}.gitVersion=v{KUBE_VERSION}",
                f"-X {package}.gitMajor={major}",
                f"-X {package}.gitMinor={minor_number}",
                f"-X {package}.gitTreeState=clean",
            ]
        self._build(module, " ".join(["-s", "-w", *stamps]), *packages, output=f"{self._bin}/")

    def _beside_kubernetes(self, name: str, requirement: str) -> Path:
        """A wrapper module with Kubernetes' requirements (and replaces) plus `requirement`."""
        kubernetes = self._home / "src" / "kubernetes"
        go_mod = (kubernetes / "go.mod").read_text()
        go_mod = go_mod.replace("module fulmen.local/kubernetes", f"module fulmen.local/{name}")
        module = self._module(name, go_mod, (kubernetes / "go.sum").read_text())
        self._run("get", requirement, cwd=module)
        return module

    def etcd(self) -> None:
        server = "go.etcd.io/etcd/server/v3"
        module = self._beside_kubernetes("etcd", f"{server}@v{ETCD_VERSION}")
        self._build(module, "-s -w", server, output=str(self._bin / "etcd"))

    def kwok(self) -> None:
        command = "sigs.k8s.io/kwok/cmd/kwok"
        module = self._beside_kubernetes("kwok", f"{command}@v{KWOK_VERSION}")
        self._build(module, "-s -w", command, output=str(self._bin / "kwok"))

    def kwok_stages(self) -> None:
        """kwok's own Stage files, from its module, as one YAML stream."""
        stages = Path(self._download(f"sigs.k8s.io/kwok@v{KWOK_VERSION}")["Dir"]) / "kustomize"
        documents = [(stages / "stage" / name).read_text().strip() for name in _KWOK_STAGES]
        _write_atomic(kwok_stages_file(), ("\n---\n".join(documents) + "\n").encode())
