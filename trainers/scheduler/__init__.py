"""The scheduling of trainer jobs: a window of episodes is ready (enough new episodes, time
elapsed, or a reward drop), its job is started once — a Kubernetes Job named by the window,
or a local subprocess — and how it ended is recorded in the store.

    scheduler = Scheduler(SchedulerSettings(), store=store, jobs=LocalJobs(...))
    scheduler.run(stop)

`KubernetesJobs` lives in `fulmen.trainers.scheduler.kubernetes_jobs()` so that importing
this package does not import the Kubernetes client.
"""

from fulmen.trainers.scheduler._executor import JobExecutor, JobPhase, JobStatus, window_env
from fulmen.trainers.scheduler._ledger import Frontier, OpenWindow, WindowLedger, WindowState
from fulmen.trainers.scheduler._local import LocalJobs
from fulmen.trainers.scheduler._policy import (
    EpisodePoint,
    PlannedWindow,
    RetryPolicy,
    Target,
    TriggerName,
    WindowRule,
    admit,
    next_window,
)
from fulmen.trainers.scheduler._scheduler import EventKind, Scheduler, SchedulerEvent
from fulmen.trainers.scheduler._settings import (
    ExecutorName,
    KubernetesJobSettings,
    LauncherName,
    LocalJobSettings,
    SchedulerSettings,
    Toleration,
)

__all__ = [
    "EpisodePoint",
    "EventKind",
    "ExecutorName",
    "Frontier",
    "JobExecutor",
    "JobPhase",
    "JobStatus",
    "KubernetesJobSettings",
    "LauncherName",
    "LocalJobSettings",
    "LocalJobs",
    "OpenWindow",
    "PlannedWindow",
    "RetryPolicy",
    "Scheduler",
    "SchedulerEvent",
    "SchedulerSettings",
    "Target",
    "Toleration",
    "TriggerName",
    "WindowLedger",
    "WindowRule",
    "WindowState",
    "admit",
    "kubernetes_jobs",
    "next_window",
    "window_env",
]


def kubernetes_jobs(settings: SchedulerSettings) -> JobExecutor:
    """The Kubernetes executor for `settings` (imports the Kubernetes client)."""
    from fulmen.trainers.scheduler._kubernetes import KubernetesJobs

    return KubernetesJobs(settings.kubernetes, retries=settings.retries)
