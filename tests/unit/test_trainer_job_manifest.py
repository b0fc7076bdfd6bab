"""The trainer Job the scheduler makes from the template in k8s/base/trainer/."""

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
from fulmen.trainers.scheduler._manifests import decode_window, job_manifest, load_template

TEMPLATE = Path(__file__).resolve().parents[2] / "k8s" / "base" / "trainer" / "job-template.yaml"
SINCE = datetime(2026, 11, 26, 10, tzinfo=UTC)
WINDOW = PlannedWindow(Target("calculator", "rl"), SINCE, datetime(2026, 11, 26, 11, 0, 0, 5,
                       tzinfo=UTC), 64, 0.75, "episodes")  # fmt: skip


def test_the_job_is_the_template_named_and_filled_in_for_the_window() -> None:
    settings = KubernetesJobSettings(
        namespace="team-a", job_template=TEMPLATE, image="registry/fulmen:1.2", gpus=2,
        queue_name="gpu-queue", node_selector={"pool": "h100"},
        tolerations=[Toleration(key="nvidia.com/gpu", operator="Exists", effect="NoSchedule",
                                toleration_seconds=30)],
    )  # fmt: skip
    job = job_manifest(load_template(settings), WINDOW, settings, retries=3)
    metadata, spec = job["metadata"], job["spec"]
    assert (metadata["name"], metadata["namespace"]) == (WINDOW.job_name, "team-a")
    assert metadata["labels"]["kueue.x-k8s.io/queue-name"] == "gpu-queue"
    assert metadata["labels"]["app.kubernetes.io/managed-by"] == "fulmen-scheduler"
    assert decode_window(metadata["annotations"]["fulmen.dev/window"]) == WINDOW
    assert (spec["backoffLimit"], spec["activeDeadlineSeconds"]) == (3, 6 * 3600)
    assert spec["podFailurePolicy"]["rules"][0]["onExitCodes"]["values"] == [3, 4]
    pod = spec["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["serviceAccountName"] == "fulmen-trainer"
    assert pod["nodeSelector"] == {"pool": "h100"}
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists",
                                   "effect": "NoSchedule", "tolerationSeconds": 30}]  # fmt: skip
    trainer = pod["containers"][0]
    assert trainer["image"] == "registry/fulmen:1.2"
    assert trainer["resources"]["limits"]["nvidia.com/gpu"] == "2"
    env = {e["name"]: e.get("value") for e in trainer["env"]}
    assert env["FULMEN_TRAIN_ARTIFACTS_DIR"] == "/artifacts"  # the template's own, kept
    assert {k: env[k] for k in window_env(WINDOW)} == window_env(WINDOW)
    assert env["FULMEN_TRAIN_SINCE"] == SINCE.isoformat()
    # The template is copied, not changed: the next window's Job starts from it again.
    template = load_template(settings)
    first = job_manifest(template, WINDOW, settings, retries=3)
    assert job_manifest(template, WINDOW, settings, retries=3) == first


def test_without_a_template_one_container_runs_fulmen_train() -> None:
    settings = KubernetesJobSettings(image="fulmen:dev")
    job = job_manifest(load_template(settings), WINDOW, settings, retries=0)
    (trainer,) = job["spec"]["template"]["spec"]["containers"]
    assert (trainer["name"], trainer["image"], trainer["command"]) == (
        "trainer",
        "fulmen:dev",
        ["fulmen", "train"],
    )
    assert "ttlSecondsAfterFinished" in job["spec"]
