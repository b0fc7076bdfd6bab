"""The manifests of a window's trainer Job, pure (no Kubernetes client): the Job itself, the
environment of a job's processes, and the headless Service an indexed Job's ranks meet at.

A window's objects are named by the window (`PlannedWindow.job_name`) and carry it in the
annotation `fulmen.dev/window`, so that a restarted scheduler rebuilds what it needs from
the objects it lists.
"""

from __future__ import annotations

import copy
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from fulmen.trainers.scheduler._executor import window_env
from fulmen.trainers.scheduler._policy import PlannedWindow, Target
from fulmen.trainers.scheduler._settings import KubernetesJobSettings

MANAGED_BY = "fulmen-scheduler"
WINDOW_LABEL = "fulmen.dev/window"
WINDOW_ANNOTATION = "fulmen.dev/window"
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
SELECTOR = f"app.kubernetes.io/managed-by={MANAGED_BY}"
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"

_NOT_RETRIED_EXIT_CODES = [3, 4]
"""`fulmen train`'s "held back by the gate" and "nothing to train on": final outcomes that
the trainer recorded itself, so the Job fails at once instead of retrying (every rank of a
multi-pod job exits with the job's code)."""

Manifest = dict[str, Any]


def _default_template(container: str) -> Manifest:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "spec": {
            "template": {
                "spec": {"containers": [{"name": container, "command": ["fulmen", "train"]}]}
            }
        },
    }


def load_template(settings: KubernetesJobSettings) -> Manifest:
    """The Job manifest that trainer Jobs start from."""
    if settings.job_template is None:
        return _default_template(settings.container)
    loaded: Manifest = yaml.safe_load(Path(settings.job_template).read_text())
    return loaded


def owned_labels(window: PlannedWindow) -> dict[str, str]:
    """The labels of every object the scheduler makes for `window`."""
    return {
        "app.kubernetes.io/name": "fulmen",
        "app.kubernetes.io/component": "trainer",
        "app.kubernetes.io/managed-by": MANAGED_BY,
        WINDOW_LABEL: window.digest,
    }


def job_manifest(
    template: Manifest, window: PlannedWindow, settings: KubernetesJobSettings, *, retries: int
) -> Manifest:
    """The window's Job: `trainer_job`, and for `settings.pods` > 1 an indexed Job of that
    many pods (the index is the rank), hostnames under the window's Service, and
    torch.distributed's variables."""
    job = trainer_job(template, window, settings, retries=retries)
    if settings.pods > 1:
        spec = job["spec"]
        indexed(spec, settings.pods)
        # A rank that dies takes the others' collectives down with it: a retry is a round of
        # up to every pod failing.
        spec["backoffLimit"] = (retries + 1) * settings.pods - 1
        pod = spec["template"]["spec"]
        pod["subdomain"] = window.job_name  # pod i is <job>-i.<job>: the headless Service
        container = container_named(pod, settings.container)
        master = f"{window.job_name}-0.{window.job_name}"
        container["env"] = [*container["env"], *process_env(settings, master_addr=master)]
    return job


def trainer_job(
    template: Manifest, window: PlannedWindow, settings: KubernetesJobSettings, *, retries: int
) -> Manifest:
    """The template as one process's Job for the window: named, labelled and annotated by the
    window, with the window's `FULMEN_TRAIN_*` variables and the settings' retries
    (`backoffLimit`), deadlines, GPUs, node selector, tolerations and Kueue queue. Trainer
    pods never mount an API token. The template is copied, never changed."""
    job = copy.deepcopy(template)
    labels = owned_labels(window)
    metadata = job.setdefault("metadata", {})
    metadata["name"] = window.job_name
    metadata["namespace"] = settings.namespace
    metadata["labels"] = {**metadata.get("labels", {}), **labels}
    if settings.queue_name is not None:
        metadata["labels"][QUEUE_LABEL] = settings.queue_name
    metadata["annotations"] = {
        **metadata.get("annotations", {}),
        WINDOW_ANNOTATION: encode_window(window),
    }
    spec = job.setdefault("spec", {})
    spec["backoffLimit"] = retries
    if settings.active_deadline_seconds is not None:
        spec["activeDeadlineSeconds"] = settings.active_deadline_seconds
    if settings.ttl_seconds_after_finished is not None:
        spec["ttlSecondsAfterFinished"] = settings.ttl_seconds_after_finished
    spec["podFailurePolicy"] = {
        "rules": [
            {
                "action": "FailJob",
                "onExitCodes": {
                    "containerName": settings.container,
                    "operator": "In",
                    "values": _NOT_RETRIED_EXIT_CODES,
                },
            },
            {  # a preempted or evicted pod is not the trainer's failure
                "action": "Ignore",
                "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
            },
        ]
    }
    pod_template = spec.setdefault("template", {})
    pod_metadata = pod_template.setdefault("metadata", {})
    pod_metadata["labels"] = {**pod_metadata.get("labels", {}), **labels}
    pod = pod_template.setdefault("spec", {})
    pod["restartPolicy"] = "Never"
    pod["automountServiceAccountToken"] = False
    if settings.node_selector:
        pod["nodeSelector"] = {**pod.get("nodeSelector", {}), **settings.node_selector}
    if settings.tolerations:
        pod["tolerations"] = [
            *pod.get("tolerations", []),
            *(
                {_camel(k): v for k, v in t.model_dump(exclude_none=True).items()}
                for t in settings.tolerations
            ),
        ]
    container = container_named(pod, settings.container)
    if settings.image is not None:
        container["image"] = settings.image
    container["env"] = [
        *container.get("env", []),
        *({"name": k, "value": v} for k, v in window_env(window).items()),
    ]
    if settings.gpus:
        resources = container.setdefault("resources", {})
        for kind in ("limits", "requests"):
            resources.setdefault(kind, {})[settings.gpu_resource] = str(settings.gpus)  # a quantity
    return job


def indexed(spec: Manifest, pods: int) -> None:
    """Make a Job spec one of `pods` indexed pods, all running at once."""
    spec["completionMode"] = "Indexed"
    spec["completions"] = spec["parallelism"] = pods


def process_env(settings: KubernetesJobSettings, *, master_addr: str) -> list[Manifest]:
    """torch.distributed's variables for a pod of an indexed Job, as `fulmen train` reads
    them (`trainers/_distributed.py`): the pod's completion index is its `RANK`, one process
    a pod, rank 0 listening at `master_addr` on the rendezvous port."""
    rank = {"fieldRef": {"fieldPath": f"metadata.annotations['{COMPLETION_INDEX}']"}}
    return [
        {"name": "RANK", "valueFrom": rank},
        {"name": "WORLD_SIZE", "value": str(settings.pods)},
        {"name": "LOCAL_RANK", "value": "0"},
        {"name": "LOCAL_WORLD_SIZE", "value": "1"},
        {"name": "MASTER_ADDR", "value": master_addr},
        {"name": "MASTER_PORT", "value": str(settings.rendezvous_port)},
    ]


def service_manifest(
    window: PlannedWindow, settings: KubernetesJobSettings, *, job_uid: str
) -> Manifest:
    """The headless Service through which a multi-pod Job's ranks meet: the Job's name,
    selecting its pods, publishing them before they are ready (they must resolve rank 0 to
    start at all), owned by the Job (job_uid) so that it is deleted with it."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": window.job_name,
            "namespace": settings.namespace,
            "labels": owned_labels(window),
            "ownerReferences": [_owner(window.job_name, job_uid)],
        },
        "spec": {
            "clusterIP": "None",
            "selector": {JOB_NAME_LABEL: window.job_name},
            "publishNotReadyAddresses": True,
            "ports": [{"name": "rendezvous", "port": settings.rendezvous_port}],
        },
    }


def _owner(job_name: str, uid: str) -> Manifest:
    return {"apiVersion": "batch/v1", "kind": "Job", "name": job_name, "uid": uid,
            "controller": True}  # fmt: skip


def container_named(pod: Manifest, name: str) -> Manifest:
    """The pod's container called `name` (`settings.container`, the one running `fulmen
    train`)."""
    for container in pod.get("containers", []):
        if container.get("name") == name:
            found: Manifest = container
            return found
    raise ValueError(f"the Job template has no container named {name!r}")


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def encode_window(window: PlannedWindow) -> str:
    """The window as the annotation `fulmen.dev/window` holds it."""
    return json.dumps(
        {
            "agent": window.target.agent,
            "algo": window.target.algo,
            "since": window.since.isoformat() if window.since else None,
            "until": window.until.isoformat(),
            "episodes": window.episodes,
            "mean_reward": window.mean_reward,
            "trigger": window.trigger,
        },
        sort_keys=True,
    )


def decode_window(text: str) -> PlannedWindow:
    """The window of an annotation written by `encode_window`."""
    data = json.loads(text)
    return PlannedWindow(
        target=Target(data["agent"], data["algo"]),
        since=datetime.fromisoformat(data["since"]) if data["since"] else None,
        until=datetime.fromisoformat(data["until"]),
        episodes=int(data["episodes"]),
        mean_reward=float(data["mean_reward"]),
        trigger=data["trigger"],
    )
