"""APO as a job's algorithm: prompt versions, optimized against OpenAI-compatible endpoints."""

from __future__ import annotations

from fulmen._progress import progress_for
from fulmen.errors import FulmenError
from fulmen.producers import version_meta
from fulmen.schemas import VersionEvent
from fulmen.tasks._task import load_task
from fulmen.trainers._algorithm import Algorithm, EmptyWindow, GatedCandidate, JobContext
from fulmen.trainers._apo import optimize_prompt, score_template, system_prompt
from fulmen.trainers._chat import ChatEndpoint
from fulmen.trainers._gate import GateDecision, decide
from fulmen.trainers._lineage import prompt_in_force
from fulmen.trainers._model_algorithms import PROGRESS_COLUMNS


class Apo(Algorithm):
    """Beam-search the system prompt from the one in force (the parent prompt version's
    `system` template, else the task's own system message), then gate the best candidate
    against it on held-out cases through the target endpoint. A search that finds nothing
    better than the prompt in force fails the gate without evaluating. The version keeps
    the parent's other templates and replaces `system`."""

    family = "apo"

    def __init__(self, job: JobContext) -> None:
        super().__init__(job)
        settings = job.settings
        self.parent = prompt_in_force(job.store, settings.agent_name, version_id=settings.parent)
        if settings.parent is not None and self.parent is None:
            raise FulmenError(f"prompt version {settings.parent!r} is not in the store")

    def parent_version(self) -> str | None:
        return self.parent.version_id if self.parent else None

    def train_and_gate(self) -> GatedCandidate:
        settings, window = self.job.settings, self.job.window
        apo, task = settings.apo, load_task(settings.task)
        start = self.parent.prompt_templates.get("system") if self.parent else None
        start = start or system_prompt(task.heldout(1)[0])
        if not start:
            raise FulmenError(f"no system prompt to optimize: {settings.task} sends none")
        if not window.calls:
            raise EmptyWindow("APO needs logged episodes to critique; the window is empty")
        optimizer = ChatEndpoint(base_url=apo.optimizer_base_url, model=apo.optimizer_model,
                                 api_key=apo.optimizer_api_key.get_secret_value())  # fmt: skip
        target = ChatEndpoint(base_url=apo.target_base_url, model=apo.target_model,
                              api_key=apo.target_api_key.get_secret_value())  # fmt: skip
        with progress_for(self.job.console, *PROGRESS_COLUMNS) as progress:
            result = optimize_prompt(start, window=window, task=task, optimizer=optimizer,
                                     target=target, settings=apo, progress=progress)  # fmt: skip
            metrics = result.metrics()
            if result.best.template == start:
                reason = "no edited prompt scored above the prompt in force on the training cases"
                decision = GateDecision(result.start.score, result.best.score, False, reason)
                return GatedCandidate(metrics, decision, _never_published)
            cases = task.heldout(settings.gate.heldout_tasks)
            bar = progress.add_task("held-out reward, parent and candidate", total=2)
            scores = []
            for template in (start, result.best.template):
                reward = score_template(
                    target, template, task, cases, max_tokens=apo.score_max_tokens, seed=apo.seed
                )
                scores.append(reward)
                progress.advance(bar)
        before, after = scores
        metrics |= {"heldout_reward_parent": before, "heldout_reward": after}
        templates = {**(self.parent.prompt_templates if self.parent else {}),
                     "system": result.best.template}  # fmt: skip
        return GatedCandidate(
            metrics,
            decide(before, after, min_gain=settings.gate.min_gain),
            lambda: VersionEvent(
                meta=version_meta(),
                version_id=self.job.candidate,
                kind="prompt",
                target_agent=settings.agent_name,
                parent_version=self.parent_version(),
                algorithm=self.family,
                window_id=window.window_id,
                dataset_hash=window.snapshot.sha256,
                prompt_templates=templates,
                metrics=metrics,
            ),
        )


def _never_published() -> VersionEvent:
    raise AssertionError("a candidate that failed the gate is never published")
