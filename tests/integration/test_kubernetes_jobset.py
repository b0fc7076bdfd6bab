"""Trainers as JobSets (`launcher: jobset`, k8s/overlays/jobset) against the test control
plane, with a minimal JobSet CRD installed (tests/support/test-fixture-jobset-crd.yaml).

The JobSet controller itself does not run here, so nothing turns a JobSet into its Job,
Service and pods, and no JobSet ever gets a status by itself. What these tests check: that
the overlay, the JobSet the scheduler makes and the Job inside it pass a server-side
dry-run; that the scheduler, with the overlay's Role and its own token, creates one
JobSet per window (a second replica and a second start are refused by name) and nothing
else; that the Job inside runs to completion on the kwok node when the test creates it as
the JobSet controller would (named `<jobset>-trainer-0`, owned by the JobSet, its pods
under the JobSet's subdomain); and how the scheduler records a JobSet's end from
`Completed` and `Failed` conditions that the test writes into its status.
"""

from __future__ import annotations

import json
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
from fulmen.trainers.scheduler._jobset import jobset_manifest
from fulmen.trainers.scheduler._manifests import load_template
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

CRD = Path(__file__).resolve().parents[1] / "support" / "test-fixture-jobset-crd.yaml"
OVERLAY = KUSTOMIZE / "overlays" / "jobset"


@pytest.fixture
def jobset_crd(kube_cluster: KubeCluster) -> KubeCluster:
    """The cluster with the JobSet CRD established (applied once, kept for the session)."""
    kube_cluster.kubectl("apply", "-f", str(CRD))
    kube_cluster.kubectl(
        "wait", "--for=condition=Established", "crd/jobsets.jobset.x-k8s.io", "--timeout=60s"
    )
    return kube_cluster


@pytest.fixture
def namespace(jobset_crd: KubeCluster) -> Iterator[Namespace]:
    ns = Namespace(jobset_crd, f"t-{uuid.uuid4().hex[:8]}", kustomization=OVERLAY)
    yield ns
    jobset_crd.kubectl("delete", "namespace", ns.name, "--wait=false", check=False)


def _jobsets(namespace: Namespace) -> list[dict[str, Any]]:
    out = namespace.cluster.kubectl("get", "jobsets", "-n", namespace.name, "-o", "json")
    items: list[dict[str, Any]] = json.loads(out.stdout)["items"]
    return items


def _child_job(jobset: dict[str, Any]) -> dict[str, Any]:
    """The Job the JobSet controller would make of the JobSet's replicated job: named
    `<jobset>-trainer-0`, labelled and owned by the JobSet, its pods under the JobSet's
    subdomain."""
    name = jobset["metadata"]["name"]
    [replicated] = jobset["spec"]["replicatedJobs"]
    spec = json.loads(json.dumps(replicated["template"]["spec"]))
    label = {"jobset.sigs.k8s.io/jobset-name": name}
    spec["template"]["metadata"]["labels"] |= label
    spec["template"]["spec"]["subdomain"] = name
    uid = jobset["metadata"].get("uid", str(uuid.uuid4()))  # none before it is created
    owner = {"apiVersion": jobset["apiVersion"], "kind": "JobSet", "name": name, "uid": uid,
             "controller": True}  # fmt: skip
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": f"{name}-{replicated['name']}-0", "labels": label,
                     "ownerReferences": [owner]},
        "spec": spec,
    }  # fmt: skip


def _write_status(namespace: Namespace, name: str, condition: str, *, reason: str,
                  message: str, restarts: int = 0) -> None:  # fmt: skip
    """What the JobSet controller writes when a JobSet ends."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    status = {"status": {
        "restarts": restarts, "terminalState": condition,
        "conditions": [{"type": condition, "status": "True", "reason": reason,
                        "message": message, "lastTransitionTime": now}],
    }}  # fmt: skip
    patch = ["--subresource=status", "--type=merge", "-p", json.dumps(status)]
    namespace.cluster.kubectl("patch", "jobset", name, "-n", namespace.name, *patch)


def test_the_overlay_and_the_scheduler_s_jobset_pass_a_server_side_dry_run(
    jobset_crd: KubeCluster,
) -> None:
    for name in ("fulmen", "kafka"):
        jobset_crd.kubectl("create", "namespace", name, check=False)
    docs = kustomize(OVERLAY)
    server_dry_run(jobset_crd, docs)
    [role] = [d for d in docs if d["kind"] == "Role"]
    assert {g for rule in role["rules"] for g in rule["apiGroups"]} == {"jobset.x-k8s.io", ""}
    # The JobSet as the scheduler fills it in from the base's trainer Job template, and the
    # Job inside it as the JobSet controller would create it.
    template = KUSTOMIZE / "base" / "trainer" / "job-template.yaml"
    window = PlannedWindow(Target("calculator", "rl"), None, datetime.now(UTC), 64, 0.5, "episodes")
    settings = KubernetesJobSettings(
        namespace="fulmen", job_template=template, launcher="jobset", pods=4, gpus=1,
        queue_name="fulmen-trainers", tolerations=[Toleration(key="nvidia.com/gpu",
                                                              operator="Exists")],
    )  # fmt: skip
    jobset = jobset_manifest(load_template(settings), window, settings, retries=2)
    server_dry_run(jobset_crd, [jobset, _child_job(jobset)], namespace="fulmen")
    # The CRD's schema is checked: a field the scheduler misspelled would be refused.
    wrong = json.loads(json.dumps(jobset))
    wrong["spec"]["failurePolicy"]["maxRestart"] = 2
    refused = jobset_crd.kubectl("apply", "--dry-run=server", "-n", "fulmen", "-f", "-",
                                 stdin=yaml.safe_dump(wrong), check=False)  # fmt: skip
    assert refused.returncode != 0
    assert "maxRestart" in refused.stderr


def test_one_jobset_per_window_its_job_runs_and_its_status_is_recorded(
    namespace: Namespace, new_store: Callable[[], LightningStore], tmp_path: Path
) -> None:
    store = new_store()
    start = datetime.now(UTC) - timedelta(hours=1)
    insert_episodes(store, "calc", [start + timedelta(seconds=i) for i in range(8)])
    settings = settings_for(namespace, tmp_path, template=kwok_template(complete_after_s=2),
                            pods=2, launcher="jobset", agents=["calc"], retries=1,
                            delete_finished=True)  # fmt: skip
    first_jobs, second_jobs = kubernetes_jobs(settings), kubernetes_jobs(settings)
    first = Scheduler(settings, store=store, jobs=first_jobs)
    second = Scheduler(settings, store=store, jobs=second_jobs)
    [event] = first.tick()
    assert event.kind == "started"
    name = event.window.job_name
    # Another replica, and the same window again: refused by name.
    assert second.tick() == []
    assert first_jobs.start(event.window) is False
    assert second_jobs.start(event.window) is False
    [jobset] = _jobsets(namespace)
    assert jobset["metadata"]["name"] == name
    assert jobset["spec"]["failurePolicy"]["maxRestarts"] == 1
    assert jobset["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "fulmen-trainers"
    # The scheduler made nothing else: no Job, no Service (the JobSet controller's work).
    for kind in ("jobs", "services"):
        listed = namespace.cluster.kubectl("get", kind, "-n", namespace.name, "-o", "json")
        assert json.loads(listed.stdout)["items"] == []
    # Its Job, created as the JobSet controller would, runs on the kwok node to completion.
    child = _child_job(jobset)
    namespace.cluster.kubectl("create", "-n", namespace.name, "-f", "-",
                              stdin=yaml.safe_dump(child))  # fmt: skip
    until(lambda: _job_completed(namespace, child["metadata"]["name"]), timeout_s=120,
          what="the JobSet's Job to complete")  # fmt: skip
    pods = json.loads(namespace.cluster.kubectl(
        "get", "pods", "-n", namespace.name, "-l", f"jobset.sigs.k8s.io/jobset-name={name}",
        "-o", "json").stdout)["items"]  # fmt: skip
    assert sorted(p["spec"]["hostname"] for p in pods) == [f"{name}-trainer-0-0",
                                                           f"{name}-trainer-0-1"]  # fmt: skip
    for p in pods:
        env = {e["name"]: e for e in p["spec"]["containers"][0]["env"]}
        assert env["MASTER_ADDR"]["value"] == f"{name}-trainer-0-0.{p['spec']['subdomain']}"
        assert p["spec"]["nodeName"] == NODE
    # The JobSet controller would now mark the JobSet Completed: the test does.
    assert first.tick() == []  # still running: no status yet
    _write_status(namespace, name, "Completed", reason="AllJobsCompleted",
                  message="jobset completed successfully")  # fmt: skip
    events: list[str] = []

    def recorded(kind: str) -> Callable[[], bool]:
        def done() -> bool:
            events.extend(f"{e.kind} {e.window.job_name}" for e in first.tick())
            first_jobs.wait(0.5)
            return any(e.startswith(kind) for e in events)

        return done

    until(recorded("succeeded"), timeout_s=60, what="the JobSet's success to be recorded")
    assert f"succeeded {name}" in events
    # The next window starts once the first ended (one job per target at a time), and its
    # JobSet fails after a restart of the group: recorded with the condition's reason.
    until(recorded("started"), timeout_s=30, what="the next window's JobSet")
    [following] = [e.split()[1] for e in events if e.startswith("started")]
    reached = "jobset failed due to reaching max number of restarts"
    _write_status(namespace, following, "Failed", reason="ReachedMaxRestarts", message=reached,
                  restarts=1)  # fmt: skip
    until(recorded("failed"), timeout_s=60, what="the JobSet's failure to be recorded")
    db = store.settings.database
    runs = store.sql(f"SELECT run_id, outcome, reason FROM {db}.training_runs").to_pylist()
    [run] = [r for r in runs if r["run_id"] == following]
    assert run["outcome"] == "failed"
    # The pods of earlier attempts are gone (none here): the restarts say what happened.
    assert run["reason"] == (
        f"ReachedMaxRestarts: {reached} (after 1 group restarts) (0 failed pods)"
    )
    assert [r["state"] for r in window_rows(store)] == ["started", "succeeded", "failed", "started"]
    # Both outcomes recorded, the scheduler deleted both JobSets (delete_finished).
    until(lambda: not _jobsets(namespace), timeout_s=30, what="the JobSets to be deleted")
    first_jobs.close()
    second_jobs.close()


def _job_completed(namespace: Namespace, name: str) -> bool:
    job = json.loads(namespace.cluster.kubectl(
        "get", "job", name, "-n", namespace.name, "-o", "json").stdout)  # fmt: skip
    return any(c["type"] == "Complete" and c["status"] == "True"
               for c in job.get("status", {}).get("conditions", []))  # fmt: skip


def test_the_overlay_s_role_allows_jobsets_and_nothing_the_jobset_controller_does(
    namespace: Namespace,
) -> None:
    scheduler = namespace.kubeconfig("fulmen-scheduler")
    ns = ["-n", namespace.name]

    def as_scheduler(*args: str, stdin: str | None = None) -> tuple[int, str]:
        result = namespace.cluster.kubectl(*args, kubeconfig=scheduler, stdin=stdin, check=False)
        return result.returncode, result.stderr

    jobset = yaml.safe_dump({
        "apiVersion": "jobset.x-k8s.io/v1alpha2", "kind": "JobSet",
        "metadata": {"name": "rbac-probe"},
        "spec": {"replicatedJobs": [{"name": "trainer", "template": {"spec": {}}}]},
    })  # fmt: skip
    job = PROBE_JOB
    service = yaml.safe_dump({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "rbac-probe"},
        "spec": {"clusterIP": "None", "ports": [{"port": 29500}]},
    })  # fmt: skip
    assert as_scheduler("create", *ns, "-f", "-", stdin=jobset)[0] == 0
    assert as_scheduler("get", "jobsets", *ns)[0] == 0
    assert as_scheduler("get", "pods", *ns)[0] == 0
    for refused in (
        as_scheduler("create", *ns, "-f", "-", stdin=job),
        as_scheduler("create", *ns, "-f", "-", stdin=service),
        as_scheduler("patch", "jobset", "rbac-probe", *ns, "--type=merge",
                     "-p", '{"metadata":{"labels":{"a":"b"}}}'),
        as_scheduler("get", "secrets", *ns),
    ):  # fmt: skip
        assert refused[0] != 0
        assert "forbidden" in refused[1].lower(), refused[1]
    assert as_scheduler("delete", "jobset", "rbac-probe", *ns)[0] == 0
