"""The JobSet the scheduler makes for a window when `launcher` is `jobset`."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from fulmen.trainers.scheduler import (
    KubernetesJobSettings,
    PlannedWindow,
    Target,
    Toleration,
    window_env,
)
from fulmen.trainers.scheduler._jobset import jobset_manifest
from fulmen.trainers.scheduler._manifests import (
    Manifest,
    decode_window,
    job_manifest,
    load_template,
)

TEMPLATE = Path(__file__).resolve().parents[2] / "k8s" / "base" / "trainer" / "job-template.yaml"
WINDOW = PlannedWindow(Target("calculator", "rl"), None, datetime(2026, 11, 26, 11, tzinfo=UTC),
                       64, 0.75, "episodes")  # fmt: skip
SETTINGS = KubernetesJobSettings(
    namespace="team-a", job_template=TEMPLATE, launcher="jobset", pods=4, gpus=1,
    queue_name="gpu-queue", node_selector={"pool": "h100"},
    tolerations=[Toleration(key="nvidia.com/gpu", operator="Exists", effect="NoSchedule")],
)  # fmt: skip


def test_the_jobset_is_one_replicated_indexed_job_restarted_as_a_group() -> None:
    jobset = jobset_manifest(load_template(SETTINGS), WINDOW, SETTINGS, retries=2)
    name = WINDOW.job_name
    assert (jobset["apiVersion"], jobset["kind"]) == ("jobset.x-k8s.io/v1alpha2", "JobSet")
    metadata, spec = jobset["metadata"], jobset["spec"]
    # Named, labelled (Kueue's queue included) and annotated as the window's Job would be.
    assert (metadata["name"], metadata["namespace"]) == (name, "team-a")
    assert metadata["labels"]["app.kubernetes.io/managed-by"] == "fulmen-scheduler"
    assert metadata["labels"]["kueue.x-k8s.io/queue-name"] == "gpu-queue"
    assert decode_window(metadata["annotations"]["fulmen.dev/window"]) == WINDOW
    assert spec["network"] == {"enableDNSHostnames": True, "publishNotReadyAddresses": True}
    assert spec["failurePolicy"]["maxRestarts"] == 2  # the retries: restarts of the group
    [rule] = spec["failurePolicy"]["rules"]
    assert (rule["action"], rule["onJobFailureReasons"]) == ("FailJobSet", ["PodFailurePolicy"])
    assert spec["ttlSecondsAfterFinished"] == 24 * 3600
    [replicated] = spec["replicatedJobs"]
    assert (replicated["name"], replicated["replicas"]) == ("trainer", 1)
    assert "metadata" not in replicated["template"]  # the child Job is neither listed nor queued
    job = replicated["template"]["spec"]
    assert (job["completionMode"], job["completions"], job["parallelism"]) == ("Indexed", 4, 4)
    assert job["backoffLimit"] == 0  # a failed pod fails the attempt; the JobSet restarts all
    assert job["activeDeadlineSeconds"] == 6 * 3600
    assert "ttlSecondsAfterFinished" not in job
    assert job["podFailurePolicy"]["rules"][0]["onExitCodes"]["values"] == [3, 4]
    pod = job["template"]["spec"]
    assert "subdomain" not in pod  # the JobSet controller sets it to its Service
    assert pod["automountServiceAccountToken"] is False
    assert pod["nodeSelector"] == {"pool": "h100"}
    assert pod["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert job["template"]["metadata"]["labels"]["app.kubernetes.io/component"] == "trainer"
    [trainer] = pod["containers"]
    assert trainer["resources"]["limits"]["nvidia.com/gpu"] == "1"
    env = {e["name"]: e for e in trainer["env"]}
    assert {k: env[k]["value"] for k in window_env(WINDOW)} == window_env(WINDOW)
    assert env["FULMEN_TRAIN_ARTIFACTS_DIR"]["value"] == "/artifacts"  # the template's own
    # torch.distributed's variables as `fulmen train` reads them: rank 0 is pod 0 of the
    # replicated job's only Job, under the JobSet's Service.
    assert env["MASTER_ADDR"]["value"] == f"{name}-trainer-0-0.{name}"
    assert len(f"{name}-trainer-0-0") <= 63  # a host name is a DNS label
    assert env["RANK"]["valueFrom"]["fieldRef"]["fieldPath"] == (
        "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    )
    assert {k: env[k]["value"] for k in ("WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT")} == {
        "WORLD_SIZE": "4",
        "LOCAL_RANK": "0",
        "MASTER_PORT": "29500",
    }


def test_the_pod_is_the_one_a_job_of_the_same_window_would_run() -> None:
    template = load_template(SETTINGS)
    jobset = jobset_manifest(template, WINDOW, SETTINGS, retries=1)
    assert jobset_manifest(template, WINDOW, SETTINGS, retries=1) == jobset  # template unchanged
    job = job_manifest(template, WINDOW, SETTINGS, retries=1)
    from_jobset = jobset["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]
    from_job = job["spec"]["template"]
    # Only the rendezvous differs: the Job's own Service, or the JobSet's.
    assert from_job["spec"].pop("subdomain") == WINDOW.job_name

    def without_master(pod_template: Manifest) -> Manifest:
        [container] = pod_template["spec"]["containers"]
        container["env"] = [e for e in container["env"] if e["name"] != "MASTER_ADDR"]
        return pod_template

    assert without_master(from_jobset) == without_master(from_job)


def test_one_process_has_no_rendezvous() -> None:
    one = SETTINGS.model_copy(update={"pods": 1})
    jobset = jobset_manifest(load_template(one), WINDOW, one, retries=0)
    job = jobset["spec"]["replicatedJobs"][0]["template"]["spec"]
    assert (job["completions"], job["parallelism"]) == (1, 1)
    names = {e["name"] for e in job["template"]["spec"]["containers"][0]["env"]}
    assert not names & {"RANK", "WORLD_SIZE", "MASTER_ADDR"}
    assert jobset["spec"]["failurePolicy"]["maxRestarts"] == 0
