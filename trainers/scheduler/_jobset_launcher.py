"""Trainers as JobSets (`jobset.x-k8s.io/v1alpha2`), for clusters that run the JobSet
controller (or the Kubeflow Trainer, which installs it): one JobSet per window, whose
controller makes the indexed Job and its headless Service and restarts the group as a
whole (`_jobset.py`). The scheduler creates nothing else."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from kubernetes import client, watch

from fulmen.trainers.scheduler._jobset import (
    GROUP,
    JOBSET_NAME_LABEL,
    PLURAL,
    VERSION,
    jobset_manifest,
)
from fulmen.trainers.scheduler._launcher import Launcher, deleted
from fulmen.trainers.scheduler._manifests import Manifest
from fulmen.trainers.scheduler._policy import PlannedWindow


class JobSetLauncher(Launcher):
    """One JobSet per window, its Job from `template`."""

    completed = "Completed"

    @property
    def _custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self._api)

    def create(self, window: PlannedWindow) -> Manifest | None:
        manifest = jobset_manifest(self._template, window, self._settings, retries=self._retries)
        return self.created(
            lambda: self._custom.create_namespaced_custom_object(
                GROUP, VERSION, self._namespace, PLURAL, manifest
            )
        )

    def list(self, *, label_selector: str) -> Manifest:
        return self.plain(
            self._custom.list_namespaced_custom_object(
                GROUP, VERSION, self._namespace, PLURAL, label_selector=label_selector
            )
        )

    def watch(self, stream: watch.Watch, **query: Any) -> Iterator[Manifest]:
        events = stream.stream(  # type: ignore[no-untyped-call]  # unannotated in the client
            self._custom.list_namespaced_custom_object,
            GROUP,
            VERSION,
            self._namespace,
            PLURAL,
            **query,
        )
        for event in events:
            yield {"type": event["type"], "object": self.plain(event["object"])}

    def delete(self, name: str) -> None:
        deleted(
            lambda: self._custom.delete_namespaced_custom_object(
                GROUP, VERSION, self._namespace, PLURAL, name, propagation_policy="Background"
            )
        )

    def failure_note(self, obj: Manifest) -> str:
        """The group restarts before the failure: the pods of earlier attempts are gone."""
        return f" (after {int(obj.get('status', {}).get('restarts', 0))} group restarts)"

    def pods_of(self, name: str) -> str:
        return f"{JOBSET_NAME_LABEL}={name}"
