"""A real Kubernetes control plane for tests, envtest style, from the cached binaries.

etcd, kube-apiserver (RBAC enforced, a static admin token, service-account tokens signed
by its own key), kube-controller-manager (its Job controller makes the pods), kube-scheduler
and kwok (one fake Node; pods go Running, then Succeeded or Failed as kwok's Stages say).
Every process listens on 127.0.0.1 on free ports and writes its log under the work dir.

`fulmen kube bins` builds the binaries once (tests skip, saying so, when they are absent).
"""

from __future__ import annotations

import contextlib
import ssl
import subprocess
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from fulmen._net import free_ports
from fulmen.local import KUBE_BINARIES, kube_bin_dir, kwok_stages_file

NODE = "kwok-node-0"
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
SERVICE_RANGE = "10.0.0.0/24"  # the apiserver's virtual service range, never dialled


def binaries_missing() -> list[str]:
    """Which of the binaries the cluster needs are not in the cache."""
    missing = [name for name in KUBE_BINARIES if not (kube_bin_dir() / name).is_file()]
    if not kwok_stages_file().is_file():
        missing.append(kwok_stages_file().name)
    return missing


def _free_port() -> int:
    (port,) = free_ports(1)
    return port


@dataclass
class KubeCluster:
    """The control plane's processes; `start()` returns once the API server is ready and
    the fake node is Ready."""

    work_dir: Path
    admin_token: str = field(default_factory=lambda: uuid.uuid4().hex)
    port: int = field(default_factory=_free_port)
    _processes: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def kubeconfig(self, name: str, token: str) -> Path:
        """A kubeconfig file for `token` (the server's certificate is self-signed)."""
        path = self.work_dir / f"{name}.kubeconfig"
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "test", "cluster": {"server": self.server,
                                                      "insecure-skip-tls-verify": True}}],
            "users": [{"name": name, "user": {"token": token}}],
            "contexts": [{"name": name, "context": {"cluster": "test", "user": name}}],
            "current-context": name,
        }  # fmt: skip
        path.write_text(yaml.safe_dump(config))
        return path

    @property
    def admin_kubeconfig(self) -> Path:
        return self.work_dir / "admin.kubeconfig"

    def kubectl(self, *args: str, kubeconfig: Path | None = None, stdin: str | None = None,
                check: bool = True) -> subprocess.CompletedProcess[str]:  # fmt: skip
        """Run kubectl (built with the cluster, same version) against this cluster."""
        return subprocess.run(
            [str(kube_bin_dir() / "kubectl"), "--kubeconfig",
             str(kubeconfig or self.admin_kubeconfig), *args],
            input=stdin, capture_output=True, text=True, check=check, timeout=120,
        )  # fmt: skip

    def _spawn(self, name: str, *args: str) -> None:
        log = (self.work_dir / f"{name}.log").open("wb")
        process = subprocess.Popen(
            [str(kube_bin_dir() / name), *args], stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, cwd=self.work_dir,
        )  # fmt: skip
        self._processes.append((name, process))

    def start(self, timeout_s: float = 180) -> None:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        etcd_port, peer_port = free_ports(2)
        self._spawn(
            "etcd", "--name=test", f"--data-dir={self.work_dir / 'etcd'}",
            f"--listen-client-urls=http://127.0.0.1:{etcd_port}",
            f"--advertise-client-urls=http://127.0.0.1:{etcd_port}",
            f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
            f"--initial-cluster=test=http://127.0.0.1:{peer_port}",
            "--unsafe-no-fsync=true", "--log-level=warn",
        )  # fmt: skip
        key = self.work_dir / "sa.key"
        subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True,
                       capture_output=True)  # fmt: skip
        tokens = self.work_dir / "tokens.csv"
        tokens.write_text(f"{self.admin_token},admin,admin,system:masters\n")
        self._spawn(
            "kube-apiserver", f"--etcd-servers=http://127.0.0.1:{etcd_port}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
            f"--secure-port={self.port}", f"--cert-dir={self.work_dir / 'certs'}",
            f"--service-cluster-ip-range={SERVICE_RANGE}", "--allow-privileged=true",
            f"--service-account-key-file={key}", f"--service-account-signing-key-file={key}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--token-auth-file={tokens}", "--authorization-mode=RBAC",
            # No node lifecycle controller lifts the not-ready taint of the fake node.
            "--disable-admission-plugins=ServiceAccount,TaintNodesByCondition",
            "--endpoint-reconciler-type=none",
        )  # fmt: skip
        self._wait_ready(time.monotonic() + timeout_s)
        admin = self.kubeconfig("admin", self.admin_token)
        self._spawn(
            "kube-controller-manager", f"--kubeconfig={admin}", "--leader-elect=false",
            "--secure-port=0", f"--service-account-private-key-file={key}",
            "--controllers=job-controller,ttl-after-finished-controller,"
            "garbage-collector-controller,namespace-controller,serviceaccount-controller",
        )  # fmt: skip
        self._spawn("kube-scheduler", f"--kubeconfig={admin}", "--leader-elect=false",
                    "--secure-port=0")  # fmt: skip
        self._spawn(
            "kwok", f"--kubeconfig={admin}", "--manage-all-nodes=true",
            f"--config={kwok_stages_file()}", f"--server-address=127.0.0.1:{_free_port()}",
        )  # fmt: skip
        self._add_node(time.monotonic() + timeout_s)

    def _wait_ready(self, deadline: float) -> None:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        request = urllib.request.Request(
            f"{self.server}/readyz", headers={"Authorization": f"Bearer {self.admin_token}"}
        )
        while time.monotonic() < deadline:
            self._check_alive()
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(request, context=context, timeout=5) as reply,
            ):
                if reply.read().strip() == b"ok":
                    return
            time.sleep(0.5)
        raise TimeoutError(f"kube-apiserver not ready; see {self.work_dir}/kube-apiserver.log")

    def _add_node(self, deadline: float) -> None:
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": NODE, "labels": {"type": "kwok", "kubernetes.io/hostname": NODE},
                         "annotations": {"kwok.x-k8s.io/node": "fake"}},
            "spec": {"taints": [GPU_TAINT]},
            "status": {
                "allocatable": {"cpu": "64", "memory": "512Gi", "pods": "110",
                                "nvidia.com/gpu": "8"},
                "capacity": {"cpu": "64", "memory": "512Gi", "pods": "110",
                             "nvidia.com/gpu": "8"},
            },
        }  # fmt: skip
        self.kubectl("create", "-f", "-", stdin=yaml.safe_dump(node))
        while time.monotonic() < deadline:
            self._check_alive()
            ready = self.kubectl(
                "get", "node", NODE, "-o",
                "jsonpath={.status.conditions[?(@.type=='Ready')].status}", check=False,
            )  # fmt: skip
            if ready.stdout.strip() == "True":
                return
            time.sleep(0.5)
        raise TimeoutError(f"kwok never made {NODE} Ready; see {self.work_dir}/kwok.log")

    def _check_alive(self) -> None:
        for name, process in self._processes:
            if process.poll() is not None:
                log = (self.work_dir / f"{name}.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{name} exited with {process.returncode}:\n{log}")

    def stop(self) -> None:
        for _, process in reversed(self._processes):
            process.terminate()
        for _, process in reversed(self._processes):
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._processes.clear()
