"""What the scheduler reads at start-up: `fulmen scheduler` options, or `FULMEN_SCHEDULER_*`
environment variables (nested with `__`, e.g. `FULMEN_SCHEDULER_WINDOW__EVERY_EPISODES`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from fulmen.trainers.scheduler._policy import WindowRule

ExecutorName = Literal["kubernetes", "local"]
LauncherName = Literal["job", "jobset"]


class Toleration(BaseModel):
    """A Kubernetes toleration of the trainer pods (e.g. of a GPU node pool's taint)."""

    key: str | None = None
    operator: Literal["Equal", "Exists"] = "Equal"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = None


class KubernetesJobSettings(BaseModel):
    """How trainer Jobs are made. The Job template (a Job manifest, `k8s/base/trainer/`)
    gives the pod: image, volumes, `envFrom`; these settings add the rest."""

    namespace: str = "fulmen"
    kubeconfig: Path | None = None
    """None: the in-cluster service account (the scheduler's Deployment)."""
    job_template: Path | None = None
    """A Job manifest to start from; None: one container running the `image`."""
    image: str | None = None
    """Overrides the template's trainer image."""
    container: str = "trainer"
    """The template's container that runs `fulmen train`."""
    queue_name: str | None = None
    """Kueue LocalQueue: set as the `kueue.x-k8s.io/queue-name` label; Kueue admits the Job."""
    gpus: int = Field(default=0, ge=0)
    """GPUs each trainer pod requests (and is limited to)."""
    gpu_resource: str = "nvidia.com/gpu"
    launcher: LauncherName = "job"
    """What a window's trainer is: a Job (`batch/v1`, Kubernetes alone), or a JobSet
    (`jobset.x-k8s.io/v1alpha2`, where the JobSet controller runs: the group's own headless
    Service, and the whole group restarted when a pod fails). Both start from the Job
    template."""
    pods: int = Field(default=1, ge=1)
    """Processes of one trainer job, a pod each. Above 1: an indexed Job whose pods find
    each other through a headless Service (the scheduler's, of the Job's name, created and
    deleted with it; or the JobSet's) and train sharded, as under torchrun; give each pod
    one GPU."""
    rendezvous_port: int = Field(default=29500, ge=1, le=65535)
    """The port rank 0 listens on for the other ranks (torch.distributed's MASTER_PORT)."""
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[Toleration] = Field(default_factory=list)
    active_deadline_seconds: int | None = Field(default=6 * 3600, ge=1)
    ttl_seconds_after_finished: int | None = Field(default=24 * 3600, ge=0)


class LocalJobSettings(BaseModel):
    """How the local runner starts a job: a subprocess with the same environment contract."""

    command: list[str] = Field(default_factory=lambda: ["fulmen", "train"])
    work_dir: Path = Path(".fulmen/scheduler")
    """Each job's log and result file."""


def _sft_only() -> list[str]:
    return ["sft"]


class SchedulerSettings(BaseSettings):
    """One scheduler: which targets, when windows are ready, how many jobs at once."""

    model_config = SettingsConfigDict(
        env_prefix="FULMEN_SCHEDULER_", env_nested_delimiter="__", extra="ignore"
    )

    executor: ExecutorName = "local"
    agents: list[str] = Field(default_factory=list)
    """The agents to train; empty: every agent with episodes in the store."""
    algos: list[str] = Field(default_factory=_sft_only, min_length=1)
    """Each agent gets a window sequence per algorithm."""
    window: WindowRule = Field(default_factory=WindowRule)
    max_concurrent: int = Field(default=1, ge=1)
    """Jobs running at once (the GPUs this scheduler may use)."""
    retries: int = Field(default=1, ge=0)
    """Retries of a failed job: the Job's `backoffLimit`, or re-runs of the local subprocess."""
    retry_backoff_seconds: float = Field(default=10.0, ge=0)
    """The local runner's first wait before a retry, doubled each time (capped at 6 min);
    Kubernetes' Job controller applies its own (10 s, doubled)."""
    poll_seconds: float = Field(default=5.0, gt=0)
    lost_after_seconds: float = Field(default=60.0, ge=0)
    """A started window whose job is gone is recorded as failed only after this long."""
    delete_finished: bool = False
    """Delete a job once its outcome is recorded (else the TTL of finished Jobs does)."""
    kubernetes: KubernetesJobSettings = Field(default_factory=KubernetesJobSettings)
    local: LocalJobSettings = Field(default_factory=LocalJobSettings)
