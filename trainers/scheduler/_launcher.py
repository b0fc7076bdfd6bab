"""How a window's trainer is made on Kubernetes: the kind of object (a Job, or a JobSet)
behind `KubernetesJobs`. One file per kind: `_job_launcher.py`, `_jobset_launcher.py`."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from fulmen.trainers.scheduler._executor import JobPhase
from fulmen.trainers.scheduler._manifests import Manifest
from fulmen.trainers.scheduler._policy import PlannedWindow
from fulmen.trainers.scheduler._settings import KubernetesJobSettings


@dataclass(frozen=True, slots=True)
class Outcome:
    """Where an object stands, from its status: `reason` (a failed one's condition, its
    reason and message) is None unless `phase` is "failed"."""

    phase: JobPhase
    reason: str | None
    started_at: datetime
    finished_at: datetime | None


class Launcher(ABC):
    """Creates, lists, watches and deletes the trainer objects of one kind in a namespace,
    and reads their status. Objects are named by their window (`PlannedWindow.job_name`)
    and labelled as the scheduler's (`SELECTOR`); every object is returned as the API's
    JSON (camelCase keys, times as strings)."""

    completed: str
    """The status condition of an object that succeeded (a failed one's is `Failed`)."""

    def __init__(
        self,
        api: client.ApiClient,
        *,
        settings: KubernetesJobSettings,
        template: Manifest,
        retries: int,
    ) -> None:
        self._api = api
        self._settings = settings
        self._namespace = settings.namespace
        self._template = template
        """The trainer Job template (`load_template`)."""
        self._retries = retries

    @abstractmethod
    def create(self, window: PlannedWindow) -> Manifest | None:
        """Create the window's object and whatever it needs: the object as created, or None
        when it exists already (409 AlreadyExists), after making sure that what it needs
        exists too."""

    @abstractmethod
    def list(self, *, label_selector: str) -> Manifest:
        """The selected objects: a list with `items` and `metadata.resourceVersion`."""

    @abstractmethod
    def watch(self, stream: watch.Watch, **query: Any) -> Iterator[Manifest]:
        """`stream`'s events of the objects (the list call's `query`: label selector,
        resource version, timeouts)."""

    @abstractmethod
    def delete(self, name: str) -> None:
        """Delete the object and what it owns; nothing when it is gone already."""

    def outcome(self, obj: Manifest) -> Outcome:
        """The object's phase, failure condition and times, from its status: started at
        `startTime` (else its creation), finished at `completionTime` (else when its last
        condition became true)."""
        metadata, status = obj["metadata"], obj.get("status", {})
        conditions = {c["type"]: c for c in status.get("conditions") or [] if c["status"] == "True"}
        phase: JobPhase = "active"
        reason = None
        ended = conditions.get(self.completed) or conditions.get("Failed")
        if self.completed in conditions:
            phase = "succeeded"
        elif "Failed" in conditions:
            failed = conditions["Failed"]
            phase = "failed"
            reason = f"{failed.get('reason', 'Failed')}: {failed.get('message', '')}".strip()
            reason += self.failure_note(obj)
        finished = status.get("completionTime") or (ended or {}).get("lastTransitionTime")
        return Outcome(
            phase=phase,
            reason=reason,
            started_at=_time(status.get("startTime") or metadata["creationTimestamp"]),
            finished_at=None if finished is None else _time(finished),
        )

    def failure_note(self, obj: Manifest) -> str:
        """What a failed object's reason adds to its condition (nothing by default)."""
        return ""

    @abstractmethod
    def pods_of(self, name: str) -> str:
        """The label selector of the object's pods."""

    def created(self, create: Callable[[], object]) -> Manifest | None:
        """What `create()` made, or None when the API server refuses it as existing (409)."""
        try:
            return self.plain(create())
        except ApiException as exc:
            if exc.status != 409:
                raise
            return None

    def plain(self, model: object) -> Manifest:
        """A client model as the API's JSON (a dict stays as it is)."""
        plain: Manifest = self._api.sanitize_for_serialization(  # type: ignore[no-untyped-call]
            model
        )
        return plain


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value).astimezone(UTC)


def deleted(delete: Callable[[], object]) -> None:
    """Run `delete()`; an object gone already (404) is not an error."""
    try:
        delete()
    except ApiException as exc:
        if exc.status != 404:
            raise
