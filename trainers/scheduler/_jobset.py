"""A window's trainer as a JobSet (`jobset.x-k8s.io/v1alpha2`), pure (no Kubernetes client).

The JobSet holds one replicated job, one indexed Job of `settings.pods` pods (the index is
the rank), filled in from the same Job template as a plain trainer Job. The JobSet
controller gives the group its headless Service (`network.enableDNSHostnames`: pod i is
`<name>-trainer-0-i.<name>`) and, when any pod fails, recreates the whole group, up to
`failurePolicy.maxRestarts` (the scheduler's retries) times; a pod that ends with exit
code 3 or 4 fails its Job through the pod failure policy, and that fails the JobSet at once.
"""

from __future__ import annotations

from fulmen.trainers.scheduler._manifests import (
    Manifest,
    container_named,
    indexed,
    process_env,
    trainer_job,
)
from fulmen.trainers.scheduler._policy import PlannedWindow
from fulmen.trainers.scheduler._settings import KubernetesJobSettings

GROUP = "jobset.x-k8s.io"
VERSION = "v1alpha2"
PLURAL = "jobsets"
REPLICATED_JOB = "trainer"
"""The replicated job's name: a suffix of the child Job's and the pods' host names (a
window's name of at most 50 characters keeps `<name>-trainer-0-<rank>` a DNS label)."""
JOBSET_NAME_LABEL = "jobset.sigs.k8s.io/jobset-name"
"""The label the JobSet controller puts on its Jobs and their pods."""


def master_addr(name: str) -> str:
    """Rank 0's host name in the JobSet `name` (its subdomain is the JobSet's name)."""
    return f"{name}-{REPLICATED_JOB}-0-0.{name}"


def jobset_manifest(
    template: Manifest, window: PlannedWindow, settings: KubernetesJobSettings, *, retries: int
) -> Manifest:
    """The window's JobSet: the name, labels (the Kueue queue's among them) and window
    annotation a Job would have, `ttlSecondsAfterFinished` on the JobSet, and one replicated
    job whose Job is the template filled in (`trainer_job`) with `backoffLimit` 0 (a failed
    pod fails the attempt, and the JobSet restarts the group) and, above one pod, indexed
    with torch.distributed's variables. `activeDeadlineSeconds` bounds each attempt."""
    job = trainer_job(template, window, settings, retries=0)
    spec: Manifest = job["spec"]
    ttl = spec.pop("ttlSecondsAfterFinished", None)
    indexed(spec, settings.pods)
    if settings.pods > 1:
        container = container_named(spec["template"]["spec"], settings.container)
        address = master_addr(window.job_name)
        container["env"] = [*container["env"], *process_env(settings, master_addr=address)]
    jobset_spec: Manifest = {
        # The child Job carries no labels of its own: the JobSet is what the scheduler lists
        # and Kueue admits.
        "replicatedJobs": [{"name": REPLICATED_JOB, "replicas": 1, "template": {"spec": spec}}],
        "network": {"enableDNSHostnames": True, "publishNotReadyAddresses": True},
        "successPolicy": {"operator": "All"},
        "failurePolicy": {
            "maxRestarts": retries,
            "rules": [
                {  # exit code 3 or 4: an outcome the trainer recorded, never retried
                    "name": "TrainerOutcome",
                    "action": "FailJobSet",
                    "onJobFailureReasons": ["PodFailurePolicy"],
                }
            ],
        },
    }
    if ttl is not None:
        jobset_spec["ttlSecondsAfterFinished"] = ttl
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "JobSet",
        "metadata": job["metadata"],
        "spec": jobset_spec,
    }
