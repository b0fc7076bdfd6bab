"""The manifests and the scheduler against a real Kubernetes API server (no mock of the API).

The session's control plane (``kube_cluster``) runs etcd, kube-apiserver with RBAC,
kube-controller-manager (the Job controller makes the pods), kube-scheduler and kwok (one
fake GPU node, tainted; pods go Running, then Succeeded, or Failed when a kwok label says
so). Each test gets a namespace holding the scheduler's ServiceAccount, Role and RoleBinding
as `k8s/base` renders them, and the scheduler runs with that ServiceAccount's own token.
"""

from __future__ import annotations

import json
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from fulmen.store import LightningStore
from fulmen.trainers.scheduler import (
    KubernetesJobSettings,
    PlannedWindow,
    Scheduler,
    Target,
    Toleration,
    kubernetes_jobs,
)
from fulmen.trainers.scheduler._manifests import job_manifest, load_template, service_manifest
from tests.support.episodes import insert_episodes
from tests.support.kube import NODE, KubeCluster
from tests.support.kube_scheduling import (
    KUSTOMIZE,
    PROBE_JOB,
    Namespace,
    kustomize,
    kwok_template,
    server_dry_run,
    settings_for,
    until,
    window_rows,
)

pytestmark = [pytest.mark.kube, pytest.mark.timeout(240)]
_STRIMZI_CRDS = ("KafkaTopic", "KafkaUser")


@pytest.fixture
def namespace(kube_cluster: KubeCluster) -> Iterator[Namespace]:
    ns = Namespace(kube_cluster, f"t-{uuid.uuid4().hex[:8]}")
    yield ns
    kube_cluster.kubectl("delete", "namespace", ns.name, "--wait=false", check=False)


# --- manifests -------------------------------------------------------------------------


def test_every_manifest_passes_a_server_side_dry_run(kube_cluster: KubeCluster) -> None:
    # What a cluster has before Fulmen: its namespaces, and Strimzi's CRDs for that overlay.
    for name in ("fulmen", "kafka"):
        kube_cluster.kubectl("create", "namespace", name, check=False)
    for kind in _STRIMZI_CRDS:
        kube_cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(_stub_crd(kind)))
    kube_cluster.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
    for overlay in ("dev", "prod", "strimzi"):
        server_dry_run(kube_cluster, kustomize(KUSTOMIZE / "overlays" / overlay))
    # The trainer Job template as it is, and as the scheduler fills it in for a window.
    template = KUSTOMIZE / "base" / "trainer" / "job-template.yaml"
    window = PlannedWindow(Target("calculator", "rl"), None, datetime.now(UTC), 64, 0.5, "episodes")
    settings = KubernetesJobSettings(
        namespace="fulmen", job_template=template, gpus=1, queue_name="fulmen-trainers",
        node_selector={"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"},
        tolerations=[Toleration(key="nvidia.com/gpu", operator="Exists", effect="NoSchedule")],
    )  # fmt: skip
    job = job_manifest(load_template(settings), window, settings, retries=2)
    sharded = settings.model_copy(update={"pods": 4})
    multi = job_manifest(load_template(sharded), window, sharded, retries=2)
    service = service_manifest(window, sharded, job_uid=str(uuid.uuid4()))
    for manifest in (yaml.safe_load(template.read_text()), job, multi, service):
        server_dry_run(kube_cluster, [manifest], namespace="fulmen")


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a Kubernetes label selector (matchLabels, matchExpressions) selects `labels`."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        present = expression["key"] in labels
        value = labels.get(expression["key"])
        holds = {
            "In": present and value in expression.get("values", []),
            "NotIn": not present or value not in expression.get("values", []),
            "Exists": present,
            "DoesNotExist": not present,
        }[expression["operator"]]
        if not holds:
            return False
    return True


def test_network_policies_admit_only_their_clients(namespace: Namespace) -> None:
    docs = kustomize(KUSTOMIZE / "overlays" / "dev")
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    for policy in policies:
        policy["metadata"]["namespace"] = namespace.name
    namespace.cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(policies))
    stored = json.loads(
        namespace.cluster.kubectl(
            "get", "networkpolicies", "-n", namespace.name, "-o", "json"
        ).stdout
    )["items"]
    by_name = {p["metadata"]["name"]: p["spec"] for p in stored}
    assert set(by_name) == {"fulmen-store", "fulmen-policy", "fulmen-gateway"}
    pods = {
        d["metadata"]["name"]: d["spec"]["template"]["metadata"]["labels"]
        for d in docs
        if d["kind"] in ("Deployment", "StatefulSet")
    }
    trainer = yaml.safe_load((KUSTOMIZE / "base" / "trainer" / "job-template.yaml").read_text())
    pods["trainer"] = trainer["spec"]["template"]["metadata"]["labels"]
    pods["agent"] = {"fulmen.dev/agent": "true"}
    pods["analyst"] = {"fulmen.dev/store-reader": "true"}
    pods["stranger"] = {"app": "other"}

    def admitted(policy: dict[str, Any], port: int) -> set[str]:
        (rule,) = policy["ingress"]
        assert [p["port"] for p in rule["ports"]] == [port]
        return {
            name
            for name, labels in pods.items()
            if any(_selects(peer["podSelector"], labels) for peer in rule["from"])
        }

    store, policy, gateway = (by_name[f"fulmen-{n}"] for n in ("store", "policy", "gateway"))
    assert _selects(store["podSelector"], pods["fulmen-store"])
    assert not _selects(store["podSelector"], pods["fulmen-policy"])
    assert admitted(store, 8123) == {
        "fulmen-worker", "trainer", "fulmen-scheduler", "fulmen-release", "analyst"
    }  # fmt: skip
    assert _selects(policy["podSelector"], pods["fulmen-policy"])
    assert admitted(policy, 8000) == {"agent", "fulmen-gateway"}
    assert _selects(gateway["podSelector"], pods["fulmen-gateway"])
    assert admitted(gateway, 8100) == {"agent"}


def _stub_crd(kind: str) -> dict[str, Any]:
    """A stand-in for Strimzi's CRD of `kind` (any spec accepted), as a cluster with
    Strimzi has it."""
    plural = kind.lower() + "s"
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.kafka.strimzi.io"},
        "spec": {
            "group": "kafka.strimzi.io",
            "scope": "Namespaced",
            "names": {"kind": kind, "plural": plural, "singular": kind.lower()},
            "versions": [
                {
                    "name": "v1beta2",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                }
            ],
        },
    }


# --- the scheduler ---------------------------------------------------------------------


def test_one_job_per_window_under_duplicate_triggers_and_a_restart(
    namespace: Namespace, new_store: Callable[[], LightningStore], tmp_path: Path
) -> None:
    store = new_store()
    start = datetime.now(UTC) - timedelta(hours=1)
    insert_episodes(store, "calc", [start + timedelta(seconds=i) for i in range(10)])
    settings = settings_for(namespace, tmp_path, template=kwok_template(complete_after_s=3),
                            agents=["calc"], max_concurrent=3)  # fmt: skip
    # Two replicas follow the same store and namespace.
    first_jobs, second_jobs = kubernetes_jobs(settings), kubernetes_jobs(settings)
    first = Scheduler(settings, store=store, jobs=first_jobs)
    second = Scheduler(settings, store=store, jobs=second_jobs)
    started = first.tick()
    assert [e.kind for e in started] == ["started"]
    window = started[0].window
    assert (window.episodes, window.since) == (4, None)
    # The other replica, and the same trigger again, start nothing new.
    assert [e.kind for e in second.tick()] == []
    assert first_jobs.start(window) is False
    assert second_jobs.start(window) is False
    # The first replica restarts while the Job runs: it continues from the cluster and store.
    first_jobs.close()
    restarted_jobs = kubernetes_jobs(settings)
    restarted = Scheduler(settings, store=store, jobs=restarted_jobs)
    assert restarted.tick() == []
    events: list[str] = []

    def run_until_two_windows_succeeded() -> bool:
        for scheduler, jobs in ((restarted, restarted_jobs), (second, second_jobs)):
            events.extend(f"{e.kind} {e.window.job_name}" for e in scheduler.tick())
            jobs.wait(0.5)
        rows = window_rows(store)
        return sum(r["state"] == "succeeded" for r in rows) == 2

    until(run_until_two_windows_succeeded, timeout_s=120, what="two windows to succeed")
    jobs = namespace.jobs()
    names = sorted(job["metadata"]["name"] for job in jobs)
    rows = window_rows(store)
    started_rows = [r for r in rows if r["state"] == "started"]
    assert len(jobs) == 2
    assert names == sorted(r["job_name"] for r in started_rows)
    # The windows partition time: the second starts where the first ends; 10 episodes make
    # two windows of 4, and the last 2 wait for more.
    assert [r["episodes"] for r in started_rows] == [4, 4]
    assert started_rows[1]["since"] == started_rows[0]["until"]
    assert all(job["status"].get("succeeded") == 1 for job in jobs)
    second_jobs.close()
    restarted_jobs.close()


def test_the_concurrency_cap_holds(
    namespace: Namespace, new_store: Callable[[], LightningStore], tmp_path: Path
) -> None:
    store = new_store()
    start = datetime.now(UTC) - timedelta(hours=1)
    agents = [f"agent-{i}" for i in range(5)]
    for agent in agents:
        insert_episodes(store, agent, [start + timedelta(seconds=i) for i in range(4)])
    settings = settings_for(namespace, tmp_path, template=kwok_template(complete_after_s=3),
                            max_concurrent=2)  # fmt: skip
    jobs = kubernetes_jobs(settings)
    scheduler = Scheduler(settings, store=store, jobs=jobs)
    stop = threading.Event()
    loop = threading.Thread(target=scheduler.run, args=(stop,), daemon=True)
    loop.start()
    most_active = 0

    def all_succeeded() -> bool:
        nonlocal most_active
        current = namespace.jobs()
        active = [j for j in current if not _finished(j)]
        most_active = max(most_active, len(active))
        return len(current) == len(agents) and not active

    try:
        until(all_succeeded, timeout_s=150, what="every agent's window to succeed")
    finally:
        stop.set()
        loop.join(timeout=30)
        jobs.close()
    assert most_active == 2
    # Each Job asked for a GPU, on the GPU node (its taint tolerated), through the queue.
    for job in namespace.jobs():
        assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "fulmen-trainers"
        pod = job["spec"]["template"]["spec"]
        assert pod["automountServiceAccountToken"] is False
        assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
        assert job["status"]["succeeded"] == 1
    pods = json.loads(
        namespace.cluster.kubectl("get", "pods", "-n", namespace.name, "-o", "json").stdout
    )["items"]
    assert {p["spec"]["nodeName"] for p in pods} == {NODE}


def _finished(job: dict[str, Any]) -> bool:
    return any(
        c["type"] in ("Complete", "Failed") and c["status"] == "True"
        for c in job.get("status", {}).get("conditions", [])
    )


def test_a_failing_job_is_retried_then_recorded_with_its_reason(
    namespace: Namespace, new_store: Callable[[], LightningStore], tmp_path: Path
) -> None:
    store = new_store()
    start = datetime.now(UTC) - timedelta(hours=1)
    insert_episodes(store, "calc", [start + timedelta(seconds=i) for i in range(4)])
    settings = settings_for(namespace, tmp_path, template=kwok_template(fail=True),
                            agents=["calc"], retries=1, delete_finished=True)  # fmt: skip
    jobs = kubernetes_jobs(settings)
    scheduler = Scheduler(settings, store=store, jobs=jobs)
    events = scheduler.tick()
    assert [e.kind for e in events] == ["started"]
    job_name = events[0].window.job_name
    failed: list[str] = []

    def recorded() -> bool:
        failed.extend(e.reason or "" for e in scheduler.tick() if e.kind == "failed")
        jobs.wait(0.5)
        return bool(failed)

    until(recorded, timeout_s=120, what="the failed Job to be recorded")
    db = store.settings.database
    runs = store.sql(
        f"SELECT run_id, outcome, reason, window_id FROM {db}.training_runs"
    ).to_pylist()
    assert len(runs) == 1
    run = runs[0]
    assert (run["run_id"], run["outcome"], run["window_id"]) == (
        job_name,
        "failed",
        events[0].window.window_id,
    )
    # Retried once (backoffLimit 1: two pods), then failed; the pod's own reason is kept.
    assert "BackoffLimitExceeded" in run["reason"]
    assert "Error (exit code 1): CUDA out of memory" in run["reason"]
    assert "(2 failed pods)" in run["reason"]
    assert [r["state"] for r in window_rows(store)] == ["failed", "started"]
    # Its outcome recorded, the Job was deleted; nothing starts the window again.
    until(lambda: not namespace.jobs(), timeout_s=30, what="the Job to be deleted")
    assert scheduler.tick() == []
    jobs.close()


def test_a_multi_process_job_runs_as_an_indexed_job_with_its_rendezvous_service(
    namespace: Namespace, new_store: Callable[[], LightningStore], tmp_path: Path
) -> None:
    store = new_store()
    start = datetime.now(UTC) - timedelta(hours=1)
    insert_episodes(store, "calc", [start + timedelta(seconds=i) for i in range(4)])
    settings = settings_for(namespace, tmp_path, template=kwok_template(complete_after_s=2),
                            pods=2, agents=["calc"], retries=1)  # fmt: skip
    jobs = kubernetes_jobs(settings)
    scheduler = Scheduler(settings, store=store, jobs=jobs)
    [event] = scheduler.tick()
    assert event.kind == "started"
    name = event.window.job_name
    assert jobs.start(event.window) is False  # the same window again: refused by name
    [job] = namespace.jobs()
    spec = job["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", 2, 2)
    assert spec["backoffLimit"] == 3  # one retry: a second round of both pods failing
    pod = spec["template"]["spec"]
    assert pod["subdomain"] == name
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert env["WORLD_SIZE"]["value"] == "2"
    assert env["MASTER_ADDR"]["value"] == f"{name}-0.{name}"
    assert env["RANK"]["valueFrom"]["fieldRef"]["fieldPath"] == (
        "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    )
    assert env["FULMEN_TRAIN_WINDOW_ID"]["value"] == event.window.window_id
    service = json.loads(namespace.cluster.kubectl(
        "get", "service", name, "-n", namespace.name, "-o", "json").stdout)  # fmt: skip
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["publishNotReadyAddresses"] is True
    assert service["spec"]["selector"] == {"batch.kubernetes.io/job-name": name}
    assert service["metadata"]["ownerReferences"][0]["uid"] == job["metadata"]["uid"]

    def succeeded() -> bool:
        scheduler.tick()
        jobs.wait(0.5)
        return any(r["state"] == "succeeded" for r in window_rows(store))

    until(succeeded, timeout_s=120, what="the two-pod Job to succeed")
    [job] = namespace.jobs()
    assert job["status"]["succeeded"] == 2
    pods = json.loads(namespace.cluster.kubectl(
        "get", "pods", "-n", namespace.name, "-l", f"batch.kubernetes.io/job-name={name}",
        "-o", "json").stdout)["items"]  # fmt: skip
    assert sorted(p["spec"]["hostname"] for p in pods) == [f"{name}-0", f"{name}-1"]
    assert sorted(p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]
                  for p in pods) == ["0", "1"]  # fmt: skip
    for p in pods:  # a GPU per pod, on the GPU node
        assert p["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
        assert p["spec"]["nodeName"] == NODE
    # Deleting the Job deletes its Service (the garbage collector follows the owner).
    jobs.remove(event.window)
    until(
        lambda: namespace.cluster.kubectl(
            "get", "service", name, "-n", namespace.name, check=False
        ).returncode != 0,
        timeout_s=60, what="the Service to go with its Job",
    )  # fmt: skip
    jobs.close()


# --- RBAC ------------------------------------------------------------------------------


def test_the_scheduler_account_can_do_only_what_its_role_allows(
    namespace: Namespace, kube_cluster: KubeCluster
) -> None:
    scheduler = namespace.kubeconfig("fulmen-scheduler")
    trainer = namespace.kubeconfig("fulmen-trainer")
    other = f"other-{uuid.uuid4().hex[:6]}"
    kube_cluster.kubectl("create", "namespace", other)
    kube_cluster.kubectl("create", "secret", "generic", "fulmen-kafka", "-n", namespace.name,
                         "--from-literal=password=s3cret")  # fmt: skip
    ns = ["-n", namespace.name]
    pod = yaml.safe_dump({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "sneaky"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    })  # fmt: skip
    job = PROBE_JOB

    resident = pod.replace("sneaky", "resident")
    kube_cluster.kubectl("create", *ns, "-f", "-", stdin=resident)  # the admin's pod

    def as_(config: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return kube_cluster.kubectl(*args, kubeconfig=config, stdin=stdin, check=False)

    # Allowed: Jobs (create, list, watch, delete) and reading Pods, in its namespace.
    assert as_(scheduler, "create", *ns, "-f", "-", stdin=job).returncode == 0
    assert as_(scheduler, "get", "jobs", *ns).returncode == 0
    assert as_(scheduler, "get", "pods", *ns).returncode == 0
    # Forbidden: everything else.
    forbidden = [
        as_(scheduler, "get", "secrets", *ns),
        as_(scheduler, "get", "secret", "fulmen-kafka", *ns),
        as_(scheduler, "get", "configmaps", *ns),
        as_(scheduler, "create", *ns, "-f", "-", stdin=pod),
        as_(scheduler, "delete", "pod", "resident", *ns),
        as_(
            scheduler, "patch", "job", "rbac-probe", *ns, "-p", '{"metadata":{"labels":{"a":"b"}}}'
        ),
        as_(scheduler, "get", "jobs", "-n", other),
        as_(scheduler, "create", "-n", other, "-f", "-", stdin=job),
        as_(scheduler, "get", "nodes"),
        as_(scheduler, "get", "namespaces"),
        as_(
            scheduler, "create", "rolebinding", "escalate", "--clusterrole=admin", "--user=me", *ns
        ),
        as_(trainer, "get", "pods", *ns),
        as_(trainer, "get", "jobs", *ns),
        as_(trainer, "get", "secrets", *ns),
    ]
    for result in forbidden:
        assert result.returncode != 0
        assert "Forbidden" in result.stderr or "forbidden" in result.stderr, result.stderr
    assert as_(scheduler, "delete", "job", "rbac-probe", *ns).returncode == 0
