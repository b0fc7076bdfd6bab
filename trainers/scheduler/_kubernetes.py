"""Trainer jobs on Kubernetes: the executor, with the launchers the only modules that
import the `kubernetes` client.

A window's trainer (a Job, or a JobSet: `KubernetesJobSettings.launcher`) is named by the
window (`PlannedWindow.job_name`), so creating it twice is refused by the API server (409
AlreadyExists) whoever tries. It carries the window in an annotation, so a restarted
scheduler rebuilds what it needs from the objects it lists. The scheduler lists and
watches only its own objects (by label), reads the failed pods of a failed one for the
reason, and may delete finished ones; nothing else (k8s/base/scheduler/rbac.yaml,
k8s/overlays/jobset).
"""

from __future__ import annotations

from typing import assert_never

from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from fulmen.trainers.scheduler._executor import JobExecutor, JobStatus
from fulmen.trainers.scheduler._job_launcher import JobLauncher
from fulmen.trainers.scheduler._jobset_launcher import JobSetLauncher
from fulmen.trainers.scheduler._launcher import Launcher
from fulmen.trainers.scheduler._manifests import (
    SELECTOR,
    WINDOW_ANNOTATION,
    Manifest,
    decode_window,
    load_template,
)
from fulmen.trainers.scheduler._policy import PlannedWindow
from fulmen.trainers.scheduler._settings import KubernetesJobSettings


def _launcher(api: client.ApiClient, settings: KubernetesJobSettings, *, retries: int) -> Launcher:
    template = load_template(settings)
    match settings.launcher:
        case "job":
            return JobLauncher(api, settings=settings, template=template, retries=retries)
        case "jobset":
            return JobSetLauncher(api, settings=settings, template=template, retries=retries)
        case _:
            assert_never(settings.launcher)


class KubernetesJobs(JobExecutor):
    """One trainer object per window in `settings.namespace`, followed with a watch."""

    def __init__(self, settings: KubernetesJobSettings, *, retries: int) -> None:
        self._settings = settings
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
        self._launcher = _launcher(self._api, settings, retries=retries)
        self._core = client.CoreV1Api(self._api)
        self._jobs: dict[str, Manifest] = {}
        self._reasons: dict[str, str] = {}
        self._resource_version: str | None = None

    def start(self, window: PlannedWindow) -> bool:
        created = self._launcher.create(window)
        if created is None:
            return False
        self._jobs[window.job_name] = created
        return True

    def jobs(self) -> list[JobStatus]:
        if self._resource_version is None:
            self._relist()
        return [self._status(job) for job in list(self._jobs.values())]

    def wait(self, timeout_s: float) -> None:
        if self._resource_version is None:
            self._relist()
        stream = watch.Watch()  # type: ignore[no-untyped-call]  # unannotated in the client
        try:
            for event in self._launcher.watch(
                stream,
                label_selector=SELECTOR,
                resource_version=self._resource_version,
                allow_watch_bookmarks=True,
                timeout_seconds=max(1, round(timeout_s)),
                _request_timeout=timeout_s + 10,
            ):
                job = event["object"]
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
        self._launcher.delete(window.job_name)
        self._jobs.pop(window.job_name, None)

    def close(self) -> None:
        self._api.close()  # type: ignore[no-untyped-call]  # unannotated in the client

    def _relist(self) -> None:
        listed = self._launcher.list(label_selector=SELECTOR)
        self._jobs = {job["metadata"]["name"]: job for job in listed["items"]}
        self._resource_version = listed["metadata"]["resourceVersion"]

    def _status(self, job: Manifest) -> JobStatus:
        metadata = job["metadata"]
        outcome = self._launcher.outcome(job)
        return JobStatus(
            window=decode_window(metadata["annotations"][WINDOW_ANNOTATION]),
            phase=outcome.phase,
            reason=None
            if outcome.reason is None
            else self._failure_reason(metadata["name"], outcome.reason),
            started_at=outcome.started_at,
            finished_at=outcome.finished_at,
        )

    def _failure_reason(self, name: str, condition: str) -> str:
        """The failure condition, and how the last failed pod's container ended."""
        if name in self._reasons:
            return self._reasons[name]
        reason = condition
        pods = self._launcher.plain(
            self._core.list_namespaced_pod(
                self._settings.namespace, label_selector=self._launcher.pods_of(name)
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
