"""Trainers as Jobs (`batch/v1`, the default launcher): one Job per window; a job of several
processes is an indexed Job with a headless Service of the same name that gives pod 0 the
address the others meet it at. The Service is owned by the Job, so it goes when the Job
goes. Needs nothing beyond Kubernetes itself."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from kubernetes import client, watch

from fulmen.trainers.scheduler._launcher import Launcher, deleted
from fulmen.trainers.scheduler._manifests import (
    JOB_NAME_LABEL,
    Manifest,
    job_manifest,
    service_manifest,
)
from fulmen.trainers.scheduler._policy import PlannedWindow


class JobLauncher(Launcher):
    """One Job per window, from `template`."""

    completed = "Complete"

    @property
    def _batch(self) -> client.BatchV1Api:
        return client.BatchV1Api(self._api)

    @property
    def _core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self._api)

    def create(self, window: PlannedWindow) -> Manifest | None:
        manifest = job_manifest(self._template, window, self._settings, retries=self._retries)
        created = self.created(
            lambda: self._batch.create_namespaced_job(
                self._namespace,
                manifest,  # type: ignore[arg-type]  # the client sends a manifest dict as is
            )
        )
        if self._settings.pods > 1:
            # Whoever created an existing Job may have stopped before its Service.
            job = created or self.plain(
                self._batch.read_namespaced_job(window.job_name, self._namespace)
            )
            service = service_manifest(window, self._settings, job_uid=job["metadata"]["uid"])
            self.created(
                lambda: self._core.create_namespaced_service(
                    self._namespace,
                    service,  # type: ignore[arg-type]  # the client sends a manifest dict as is
                )
            )
        return created

    def list(self, *, label_selector: str) -> Manifest:
        return self.plain(
            self._batch.list_namespaced_job(self._namespace, label_selector=label_selector)
        )

    def watch(self, stream: watch.Watch, **query: Any) -> Iterator[Manifest]:
        events = stream.stream(  # type: ignore[no-untyped-call]  # unannotated in the client
            self._batch.list_namespaced_job, self._namespace, **query
        )
        for event in events:
            yield {"type": event["type"], "object": self.plain(event["object"])}

    def delete(self, name: str) -> None:
        deleted(
            lambda: self._batch.delete_namespaced_job(
                name, self._namespace, propagation_policy="Background"
            )
        )

    def pods_of(self, name: str) -> str:
        return f"{JOB_NAME_LABEL}={name}"
