"""Trainer Jobs on Kubernetes: the only module that imports the `kubernetes` client.

A window's Job is named by the window (`PlannedWindow.job_name`), so creating it twice is
refused by the API server (409 AlreadyExists) whoever tries. A job of several processes
(`pods` > 1) is an indexed Job, one process a pod, with a headless Service of the same name
that gives pod 0 the address the others meet it at; the Service is owned by the Job, so it
goes when the Job goes. The Job carries the window in
an annotation, so a restarted scheduler rebuilds what it needs from the Jobs it lists. The
scheduler lists and watches only its own Jobs (by label), reads the failed pods of a failed
Job for the reason, creates the Services of multi-pod Jobs, and may delete finished Jobs;
nothing else (k8s/base/scheduler/rbac.yaml).
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from fulmen.trainers.scheduler._executor import JobExecutor, JobPhase, JobStatus, window_env
from fulmen.trainers.scheduler._policy import PlannedWindow, Target
from fulmen.trainers.scheduler._settings import KubernetesJobSettings

MANAGED_BY = "fulmen-scheduler"
WINDOW_LABEL = "fulmen.dev/window"
WINDOW_ANNOTATION = "fulmen.dev/window"
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
SELECTOR = f"app.kubernetes.io/managed-by={MANAGED_BY}"

_NOT_RETRIED_EXIT_CODES = [3, 4]
"""`fulmen train`'s "held back by the gate" and "nothing to train on": final outcomes that
the trainer recorded itself, so the Job fails at once instead of retrying (every rank of a
multi-pod job exits with the job's code)."""
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"

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


def job_manifest(
    template: Manifest, window: PlannedWindow, settings: KubernetesJobSettings, *, retries: int
) -> Manifest:
    """The window's Job: the template, named, labelled and annotated by the window, with the
    window's `FULMEN_TRAIN_*` variables and the settings' retries, deadlines, GPUs, node
    selector, tolerations and Kueue queue. Trainer pods never mount an API token."""
    job = copy.deepcopy(template)
    labels = {
        "app.kubernetes.io/name": "fulmen",
        "app.kubernetes.io/component": "trainer",
        "app.kubernetes.io/managed-by": MANAGED_BY,
        WINDOW_LABEL: window.digest,
    }
    metadata = job.setdefault("metadata", {})
    metadata["name"] = window.job_name
    metadata["namespace"] = settings.namespace
    metadata["labels"] = {**metadata.get("labels", {}), **labels}
    if settings.queue_name is not None:
        metadata["labels"][QUEUE_LABEL] = settings.queue_name
    metadata["annotations"] = {
        **metadata.get("annotations", {}),
        WINDOW_ANNOTATION: _encode(window),
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
    container = _container(pod, settings.container)
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
    if settings.pods > 1:
        _processes(spec, pod, container, window, settings, retries=retries)
    return job


def _processes(
    spec: Manifest,
    pod: Manifest,
    container: Manifest,
    window: PlannedWindow,
    settings: KubernetesJobSettings,
    *,
    retries: int,
) -> None:
    """Make the Job one of `settings.pods` processes: indexed pods (the index is the rank),
    hostnames under the window's Service, torch.distributed's variables."""
    spec["completionMode"] = "Indexed"
    spec["completions"] = spec["parallelism"] = settings.pods
    # A rank that dies takes the others' collectives down with it: a retry is a round of
    # up to every pod failing.
    spec["backoffLimit"] = (retries + 1) * settings.pods - 1
    pod["subdomain"] = window.job_name  # pod i is <job>-i.<job>: the headless Service
    rank = {"fieldRef": {"fieldPath": f"metadata.annotations['{COMPLETION_INDEX}']"}}
    container["env"] = [
        *container["env"],
        {"name": "RANK", "valueFrom": rank},
        {"name": "WORLD_SIZE", "value": str(settings.pods)},
        {"name": "LOCAL_RANK", "value": "0"},
        {"name": "LOCAL_WORLD_SIZE", "value": "1"},
        {"name": "MASTER_ADDR", "value": f"{window.job_name}-0.{window.job_name}"},
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
            "labels": {
                "app.kubernetes.io/name": "fulmen",
                "app.kubernetes.io/component": "trainer",
                "app.kubernetes.io/managed-by": MANAGED_BY,
                WINDOW_LABEL: window.digest,
            },
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


def _container(pod: Manifest, name: str) -> Manifest:
    for container in pod.get("containers", []):
        if container.get("name") == name:
            found: Manifest = container
            return found
    raise ValueError(f"the Job template has no container named {name!r}")


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _encode(window: PlannedWindow) -> str:
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


def _decode(text: str) -> PlannedWindow:
    data = json.loads(text)
    return PlannedWindow(
        target=Target(data["agent"], data["algo"]),
        since=datetime.fromisoformat(data["since"]) if data["since"] else None,
        until=datetime.fromisoformat(data["until"]),
        episodes=int(data["episodes"]),
        mean_reward=float(data["mean_reward"]),
        trigger=data["trigger"],
    )


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value).astimezone(UTC)


def _optional_time(value: str | None) -> datetime | None:
    return None if value is None else _time(value)


class KubernetesJobs(JobExecutor):
    """One Job per window in `settings.namespace`, followed with a watch."""

    def __init__(self, settings: KubernetesJobSettings, *, retries: int) -> None:
        self._settings = settings
        self._retries = retries
        self._template = load_template(settings)
        configuration = client.Configuration()
        # The client's config loaders carry no annotations (no-untyped-call).
        if settings.kubeconfig is not None:
            config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=str(settings.kubeconfig), client_configuration=configuration
            )
        else:
            config.load_incluster_config(  # type: ignore[no-untyped-call]
                client_configuration=configuration
            )
        self._api = client.ApiClient(configuration)
        self._batch = client.BatchV1Api(self._api)
        self._core = client.CoreV1Api(self._api)
        self._jobs: dict[str, Manifest] = {}
        self._reasons: dict[str, str] = {}
        self._resource_version: str | None = None

    def start(self, window: PlannedWindow) -> bool:
        manifest = job_manifest(self._template, window, self._settings, retries=self._retries)
        namespace = self._settings.namespace
        try:
            created = self._plain(
                self._batch.create_namespaced_job(
                    namespace,
                    manifest,  # type: ignore[arg-type]  # the client sends a manifest dict as is
                )
            )
        except ApiException as exc:
            if exc.status != 409:
                raise
            if self._settings.pods > 1:  # whoever created the Job may have stopped before this
                self._rendezvous(window, self._plain(
                    self._batch.read_namespaced_job(window.job_name, namespace)
                ))  # fmt: skip
            return False
        self._jobs[window.job_name] = created
        if self._settings.pods > 1:
            self._rendezvous(window, created)
        return True

    def _rendezvous(self, window: PlannedWindow, job: Manifest) -> None:
        """Create the Service of a multi-pod Job, unless it exists."""
        service = service_manifest(window, self._settings, job_uid=job["metadata"]["uid"])
        try:
            self._core.create_namespaced_service(
                self._settings.namespace,
                service,  # type: ignore[arg-type]  # the client sends a manifest dict as is
            )
        except ApiException as exc:
            if exc.status != 409:
                raise

    def jobs(self) -> list[JobStatus]:
        if self._resource_version is None:
            self._relist()
        return [self._status(job) for job in list(self._jobs.values())]

    def wait(self, timeout_s: float) -> None:
        if self._resource_version is None:
            self._relist()
        stream = watch.Watch()  # type: ignore[no-untyped-call]  # unannotated in the client
        try:
            for event in stream.stream(  # type: ignore[no-untyped-call]
                self._batch.list_namespaced_job,
                self._settings.namespace,
                label_selector=SELECTOR,
                resource_version=self._resource_version,
                allow_watch_bookmarks=True,
                timeout_seconds=max(1, round(timeout_s)),
                _request_timeout=timeout_s + 10,
            ):
                job = self._plain(event["object"])
                self._resource_version = job["metadata"]["resourceVersion"]
                if event["type"] == "BOOKMARK":
                    continue
                name = job["metadata"]["name"]
                if event["type"] == "DELETED":
                    self._jobs.pop(name, None)
                else:
                    self._jobs[name] = job
                stream.stop()  # type: ignore[no-untyped-call]
                break
        except ApiException as exc:
            if exc.status != 410:  # 410 Gone: the resource version expired; list again
                raise
            self._resource_version = None

    def remove(self, window: PlannedWindow) -> None:
        try:
            self._batch.delete_namespaced_job(
                window.job_name, self._settings.namespace, propagation_policy="Background"
            )
        except ApiException as exc:
            if exc.status != 404:
                raise
        self._jobs.pop(window.job_name, None)

    def close(self) -> None:
        self._api.close()  # type: ignore[no-untyped-call]  # unannotated in the client

    def _relist(self) -> None:
        listed = self._plain(
            self._batch.list_namespaced_job(self._settings.namespace, label_selector=SELECTOR)
        )
        self._jobs = {job["metadata"]["name"]: job for job in listed["items"]}
        self._resource_version = listed["metadata"]["resourceVersion"]

    def _plain(self, model: object) -> Manifest:
        """A client model as the API's JSON (camelCase keys, times as strings)."""
        plain: Manifest = self._api.sanitize_for_serialization(  # type: ignore[no-untyped-call]
            model
        )
        return plain

    def _status(self, job: Manifest) -> JobStatus:
        metadata, status = job["metadata"], job.get("status", {})
        conditions = {c["type"]: c for c in status.get("conditions", []) if c["status"] == "True"}
        phase: JobPhase = "active"
        reason = None
        if "Complete" in conditions:
            phase = "succeeded"
        elif "Failed" in conditions:
            phase = "failed"
            reason = self._failure_reason(metadata["name"], conditions["Failed"])
        return JobStatus(
            window=_decode(metadata["annotations"][WINDOW_ANNOTATION]),
            phase=phase,
            reason=reason,
            started_at=_time(status.get("startTime") or metadata["creationTimestamp"]),
            finished_at=_optional_time(
                status.get("completionTime")
                or conditions.get("Failed", {}).get("lastTransitionTime")
            ),
        )

    def _failure_reason(self, name: str, condition: Manifest) -> str:
        """The Job's failure condition, and how its last failed pod's container ended."""
        if name in self._reasons:
            return self._reasons[name]
        reason = f"{condition.get('reason', 'Failed')}: {condition.get('message', '')}".strip()
        pods = self._plain(
            self._core.list_namespaced_pod(
                self._settings.namespace, label_selector=f"batch.kubernetes.io/job-name={name}"
            )
        )
        failed = [p for p in pods["items"] if p.get("status", {}).get("phase") == "Failed"]
        failed.sort(key=lambda p: str(p["metadata"]["creationTimestamp"]))
        if failed:
            pod = failed[-1]
            for container in pod["status"].get("containerStatuses", []):
                ended = container.get("state", {}).get("terminated")
                if ended is not None and container["name"] == self._settings.container:
                    message = ended.get("message")
                    reason += (
                        f"; pod {pod['metadata']['name']}: {ended.get('reason')} (exit code "
                        f"{ended.get('exitCode')}){': ' + message if message else ''}"
                    )
        reason += f" ({len(failed)} failed pod{'s' if len(failed) != 1 else ''})"
        self._reasons[name] = reason
        return reason
