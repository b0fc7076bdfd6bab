"""Driving the scheduler against the test control plane (`tests/support/kube.py`): the
manifests as kustomize renders them, a namespace holding the scheduler's RBAC, scheduler
settings for it, trainer Job templates whose pods kwok completes or fails, and waiting."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from fulmen.local import kube_bin_dir
from fulmen.store import LightningStore
from fulmen.trainers.scheduler import (
    KubernetesJobSettings,
    LauncherName,
    SchedulerSettings,
    Toleration,
    WindowRule,
)
from fulmen.trainers.scheduler._manifests import SELECTOR
from tests.support.kube import KubeCluster

KUSTOMIZE = Path(__file__).resolve().parents[2] / "k8s"
_FAIL_STAGE = "pod-container-running-failed.stage.kwok.x-k8s.io"
PROBE_JOB = yaml.safe_dump({
    "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "rbac-probe"},
    "spec": {"template": {"spec": {"restartPolicy": "Never",
                                   "containers": [{"name": "c", "image": "busybox"}]}}},
})  # fmt: skip
"""A Job that an account may or may not create (RBAC checks)."""


def kustomize(path: Path) -> list[dict[str, Any]]:
    rendered = subprocess.run(
        [str(kube_bin_dir() / "kubectl"), "kustomize", str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [doc for doc in yaml.safe_load_all(rendered) if doc]


def kwok_template(*, complete_after_s: float = 2, fail: bool = False) -> str:
    """A trainer Job template for kwok: the pod completes after `complete_after_s`, or
    fails (exit code 1, reason and message set) when `fail`."""
    delay = f"{int(complete_after_s * 1000)}ms"
    annotations = {
        "pod-complete.stage.kwok.x-k8s.io/delay": delay,
        "pod-complete.stage.kwok.x-k8s.io/jitter-delay": delay,
    }
    labels = {}
    if fail:
        labels[_FAIL_STAGE] = "true"
        annotations |= {
            f"{_FAIL_STAGE}/reason": "Error",
            f"{_FAIL_STAGE}/message": "CUDA out of memory",
            f"{_FAIL_STAGE}/exit-code": "1",
            f"{_FAIL_STAGE}/delay": "500ms",
            f"{_FAIL_STAGE}/jitter-delay": "500ms",
        }
    template = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "spec": {
            "template": {
                "metadata": {"labels": labels, "annotations": annotations},
                "spec": {
                    "serviceAccountName": "fulmen-trainer",
                    "containers": [
                        {"name": "trainer", "image": "fulmen:test", "args": ["fulmen", "train"]}
                    ],
                },
            }
        },
    }
    return yaml.safe_dump(template)


class Namespace:
    """A test namespace with the scheduler's RBAC as `kustomization` renders it (k8s/base
    unless told), and tokens."""

    def __init__(
        self, cluster: KubeCluster, name: str, *, kustomization: Path = KUSTOMIZE / "base"
    ) -> None:
        self.cluster = cluster
        self.name = name
        cluster.kubectl("create", "namespace", name)
        wanted = {"ServiceAccount", "Role", "RoleBinding"}
        docs = [d for d in kustomize(kustomization) if d["kind"] in wanted]
        for doc in docs:
            doc["metadata"]["namespace"] = name
            for subject in doc.get("subjects", []):
                subject["namespace"] = name
        cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(docs))

    def kubeconfig(self, service_account: str) -> Path:
        token = self.cluster.kubectl(
            "create", "token", service_account, "-n", self.name, "--duration=1h"
        ).stdout.strip()
        return self.cluster.kubeconfig(f"{self.name}-{service_account}", token)

    def jobs(self) -> list[dict[str, Any]]:
        out = self.cluster.kubectl("get", "jobs", "-n", self.name, "-l", SELECTOR, "-o", "json")
        items: list[dict[str, Any]] = json.loads(out.stdout)["items"]
        return items


def settings_for(
    namespace: Namespace,
    tmp_path: Path,
    *,
    template: str,
    pods: int = 1,
    launcher: LauncherName = "job",
    **overrides: Any,
) -> SchedulerSettings:
    """The scheduler's settings for `namespace`, with its own token: trainers from
    `template`, a GPU each on the kwok node, through the queue `fulmen-trainers`; windows of
    4 episodes; `overrides` of any other setting."""
    template_file = tmp_path / f"template-{uuid.uuid4().hex[:6]}.yaml"
    template_file.write_text(template)
    kubernetes = KubernetesJobSettings(
        namespace=namespace.name,
        kubeconfig=namespace.kubeconfig("fulmen-scheduler"),
        job_template=template_file,
        gpus=1,
        node_selector={"type": "kwok"},
        tolerations=[Toleration(key="nvidia.com/gpu", operator="Exists", effect="NoSchedule")],
        queue_name="fulmen-trainers",
        pods=pods,
        launcher=launcher,
    )
    options: dict[str, Any] = {
        "executor": "kubernetes",
        "window": WindowRule(every_episodes=4, settle_seconds=0),
        "poll_seconds": 0.5,
        "kubernetes": kubernetes,
    }
    return SchedulerSettings.model_validate(options | overrides)


def until(condition: Callable[[], bool], *, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.3)


def window_rows(store: LightningStore) -> list[dict[str, Any]]:
    db = store.settings.database
    return store.sql(
        f"SELECT window_id, job_name, state, episodes, since, until, reason "
        f"FROM {db}.training_windows ORDER BY until, state"
    ).to_pylist()


def server_dry_run(cluster: KubeCluster, docs: list[dict[str, Any]], *,
                   namespace: str | None = None) -> None:  # fmt: skip
    """Apply `docs` with a server-side dry run: the API server must take every one."""
    where = ["-n", namespace] if namespace else []
    applied = cluster.kubectl("apply", "--dry-run=server", *where, "-f", "-",
                              stdin=yaml.safe_dump_all(docs), check=False)  # fmt: skip
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout.count("(server dry run)") == len(docs)
