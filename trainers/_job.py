"""One trainer job, start to finish: snapshot the window, load the parent policy, train,
gate against the parent on held-out tasks, and publish the candidate only if it passes.

This is what `fulmen train` and the Kubernetes Job run. Every decision is recorded in the
store (`training_runs`); only a passing candidate reaches the control topic.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import assert_never

from peft import PeftModel
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from transformers import PreTrainedTokenizerBase

from fulmen.errors import FulmenError
from fulmen.models import base_model_dir
from fulmen.producers import version_meta
from fulmen.schemas import VersionEvent
from fulmen.store import LightningStore, WindowQuery
from fulmen.trainers._apo import optimize_prompt, score_template, system_prompt
from fulmen.trainers._chat import ChatEndpoint
from fulmen.trainers._gate import GateDecision, decide, evaluate_with_progress
from fulmen.trainers._lineage import Lineage, PromptVersion, PublishedVersion, prompt_in_force
from fulmen.trainers._policy import trainable_policy
from fulmen.trainers._record import Outcome, TrainingRun, record_run
from fulmen.trainers._rl import rl_samples, train_rl
from fulmen.trainers._settings import TrainSettings
from fulmen.trainers._sft import train_sft
from fulmen.trainers._task import load_task
from fulmen.trainers._window import Window, best_episodes, read_window

Publish = Callable[[VersionEvent], None]

_COLUMNS = (
    TextColumn("{task.description}"),
    BarColumn(),
    MofNCompleteColumn(),
    TimeElapsedColumn(),
)

BASE_VERSION = ""
"""What agents stamp on their events before any version was published."""


class EmptyWindow(FulmenError):
    """The window holds nothing this algorithm can train on."""


@dataclass(frozen=True, slots=True)
class JobResult:
    run_id: str
    outcome: Outcome
    candidate_version: str
    parent_version: str | None
    window_id: str
    dataset_hash: str
    episodes: int
    metrics: dict[str, float]
    reason: str
    version: dict[str, object] | None
    """The published VersionEvent as JSON, when the gate passed."""


def run_job(
    settings: TrainSettings,
    *,
    store: LightningStore,
    publish: Publish,
    console: Console | None = None,
) -> JobResult:
    """Run one job; returns its result, already recorded in the store."""
    console = console or Console(stderr=True)
    started = datetime.now(UTC)
    run_id = str(uuid.uuid4())
    query = WindowQuery(
        agent_name=settings.agent_name,
        since=settings.since,
        until=settings.until,
        min_group_size=settings.min_group_size,
    )
    window = read_window(store, query, settings.snapshots_dir, window_id=settings.window_id)
    candidate = f"{settings.algo}-{window.window_id[:8]}-{run_id[:6]}"
    parent_version, train_and_gate = _plan(settings, store, window, candidate, console)
    console.print(
        f"[bold]{settings.algo}[/] on window {window.window_id} ({window.episodes} episodes, "
        f"{len(window.calls)} calls), parent {parent_version or 'base'}"
    )

    def finish(outcome: Outcome, reason: str, metrics: dict[str, float]) -> JobResult:
        run = TrainingRun(
            run_id=run_id, agent_name=settings.agent_name or "", algorithm=settings.algo,
            window_id=window.window_id, dataset_hash=window.snapshot.sha256,
            episodes=window.episodes, parent_version=parent_version,
            candidate_version=candidate, outcome=outcome, reason=reason, metrics=metrics,
            started_at=started, finished_at=datetime.now(UTC),
        )  # fmt: skip
        record_run(store, run)
        return JobResult(
            run_id=run_id, outcome=outcome, candidate_version=candidate,
            parent_version=run.parent_version, window_id=window.window_id,
            dataset_hash=window.snapshot.sha256, episodes=window.episodes, metrics=metrics,
            reason=reason, version=None,
        )  # fmt: skip

    try:
        gated = train_and_gate()
    except EmptyWindow as exc:
        return finish("failed", str(exc), {})
    console.print(gated.decision.reason)
    if not gated.decision.passed:
        return finish("gate_failed", gated.decision.reason, gated.metrics)
    event = gated.version()
    publish(event)
    result = finish("published", gated.decision.reason, gated.metrics)
    return _with_version(result, event)


@dataclass(frozen=True, slots=True)
class _Gated:
    """A trained candidate and the gate's verdict on it."""

    metrics: dict[str, float]
    decision: GateDecision
    version: Callable[[], VersionEvent]
    """Builds the version to publish (saving a model's artifact); called only on a pass."""


def _plan(
    settings: TrainSettings,
    store: LightningStore,
    window: Window,
    candidate: str,
    console: Console,
) -> tuple[str | None, Callable[[], _Gated]]:
    """The version this job improves (None: the base) and the step that trains and gates
    its candidate: model versions for RL and SFT, prompt versions for APO."""
    match settings.algo:
        case "rl" | "sft":
            lineage = Lineage.from_store(store)
            parent = _parent(settings, lineage)

            def train_model() -> _Gated:
                metrics, decision, model = _train_and_gate(settings, window, lineage, parent,
                                                           console)  # fmt: skip
                return _Gated(
                    metrics, decision,
                    lambda: _version_event(settings, window, parent, candidate, metrics, model),
                )  # fmt: skip

            return (parent.version_id if parent else None), train_model
        case "apo":
            prompt = prompt_in_force(store, settings.agent_name, version_id=settings.parent)
            if settings.parent is not None and prompt is None:
                raise FulmenError(f"prompt version {settings.parent!r} is not in the store")
            return (prompt.version_id if prompt else None), lambda: _optimize_and_gate(
                settings, window, prompt, candidate, console
            )
        case _:
            assert_never(settings.algo)


def _train_and_gate(
    settings: TrainSettings,
    window: Window,
    lineage: Lineage,
    parent: PublishedVersion | None,
    console: Console,
) -> tuple[dict[str, float], GateDecision, PeftModel]:
    task = load_task(settings.task)
    cases = task.heldout(settings.gate.heldout_tasks)
    base = base_model_dir() if settings.base_model == "smollm2" else Path(settings.base_model)
    adapter = Path(parent.artifact_uri) if parent and parent.artifact_uri else None
    model, tokenizer = trainable_policy(base, adapter, lora=settings.lora)
    with Progress(*_COLUMNS, console=console) as progress:

        def evaluate(label: str) -> float:
            return evaluate_with_progress(
                progress, label, model, tokenizer, task, cases, settings.gate
            )

        before = evaluate("held-out reward, parent")
        metrics = _train(settings, window, lineage, parent, model, tokenizer, progress)
        after = evaluate("held-out reward, candidate")
    metrics |= {"heldout_reward_parent": before, "heldout_reward": after}
    return metrics, decide(before, after, min_gain=settings.gate.min_gain), model


def _train(
    settings: TrainSettings,
    window: Window,
    lineage: Lineage,
    parent: PublishedVersion | None,
    model: PeftModel,
    tokenizer: PreTrainedTokenizerBase,
    progress: Progress,
) -> dict[str, float]:
    bar = progress.add_task(f"training ({settings.algo})", total=None)
    match settings.algo:
        case "rl":
            parents: dict[str, str | None] = {BASE_VERSION: None}
            parents |= {v: p or BASE_VERSION for v, p in lineage.parents().items()}
            data = rl_samples(
                window,
                parent=parent.version_id if parent else BASE_VERSION,
                parents=parents,
                max_staleness=settings.rl.max_staleness,
            )
            if not data.samples:
                raise EmptyWindow(
                    f"no RL samples: {data.stale} stale, {data.missing_logprobs} without "
                    f"logprobs, {data.zero_advantage} with zero advantage"
                )
            steps = train_rl(
                model,
                data,
                settings=settings.rl,
                on_step=lambda i, n, s: progress.update(bar, completed=i, total=n),
            )
            return {
                "samples": float(len(data.samples)),
                "dropped_stale": float(data.stale),
                "steps": float(len(steps)),
                "loss": steps[-1].loss,
                "tokens": float(sum(s.tokens for s in steps)),
                "train_seconds": sum(s.seconds for s in steps),
            }
        case "sft":
            calls = [c for episode in best_episodes(window, min_reward=settings.sft_min_reward)
                     for c in episode]  # fmt: skip
            if not calls:
                raise EmptyWindow(f"no episode reached reward {settings.sft_min_reward}")
            stats = train_sft(
                model,
                tokenizer,
                calls,
                settings=settings.sft,
                on_step=lambda i, n: progress.update(bar, completed=i, total=n),
            )
            return {
                "examples": float(stats.examples),
                "steps": float(stats.steps),
                "loss": stats.final_loss,
                "tokens": float(stats.tokens),
            }
        case "apo":
            raise AssertionError("APO trains prompts, not weights: see _optimize_and_gate")
        case _:
            assert_never(settings.algo)


def _optimize_and_gate(
    settings: TrainSettings,
    window: Window,
    parent: PromptVersion | None,
    candidate: str,
    console: Console,
) -> _Gated:
    """APO: beam-search the system prompt from the one in force (the parent prompt
    version's `system` template, else the task's own system message), then gate the best
    candidate against it on held-out cases through the target endpoint. A search that
    finds nothing better than the prompt in force fails the gate without evaluating. The
    version keeps the parent's other templates and replaces `system`."""
    apo = settings.apo
    task = load_task(settings.task)
    start = parent.prompt_templates.get("system") if parent else None
    start = start or system_prompt(task.heldout(1)[0])
    if not start:
        raise FulmenError(f"no system prompt to optimize: {settings.task} sends none")
    if not window.calls:
        raise EmptyWindow("APO needs logged episodes to critique; the window is empty")
    optimizer = ChatEndpoint(base_url=apo.optimizer_base_url, model=apo.optimizer_model,
                             api_key=apo.optimizer_api_key.get_secret_value())  # fmt: skip
    target = ChatEndpoint(base_url=apo.target_base_url, model=apo.target_model,
                          api_key=apo.target_api_key.get_secret_value())  # fmt: skip
    with Progress(*_COLUMNS, console=console) as progress:
        result = optimize_prompt(start, window=window, task=task, optimizer=optimizer,
                                 target=target, settings=apo, progress=progress)  # fmt: skip
        metrics = result.metrics()
        if result.best.template == start:
            reason = "no edited prompt scored above the prompt in force on the training cases"
            return _Gated(metrics, GateDecision(result.start.score, result.best.score, False,
                                                reason), _no_version)  # fmt: skip
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
    templates = {**(parent.prompt_templates if parent else {}), "system": result.best.template}
    return _Gated(
        metrics,
        decide(before, after, min_gain=settings.gate.min_gain),
        lambda: VersionEvent(
            meta=version_meta(),
            version_id=candidate,
            kind="prompt",
            target_agent=settings.agent_name,
            parent_version=parent.version_id if parent else None,
            algorithm="apo",
            window_id=window.window_id,
            dataset_hash=window.snapshot.sha256,
            prompt_templates=templates,
            metrics=metrics,
        ),
    )


def _no_version() -> VersionEvent:
    raise AssertionError("a candidate that failed the gate is never published")


def _version_event(
    settings: TrainSettings,
    window: Window,
    parent: PublishedVersion | None,
    candidate: str,
    metrics: dict[str, float],
    model: PeftModel,
) -> VersionEvent:
    artifact = (settings.artifacts_dir / candidate).resolve()
    model.save_pretrained(str(artifact))
    agent = settings.agent_name or "agent"
    return VersionEvent(
        meta=version_meta(),
        version_id=candidate,
        kind="model",
        target_agent=settings.agent_name,
        parent_version=parent.version_id if parent else None,
        algorithm=settings.algo,
        window_id=window.window_id,
        dataset_hash=window.snapshot.sha256,
        artifact_uri=str(artifact),
        model_name=f"{agent}-{candidate}",
        metrics=metrics,
    )


def _parent(settings: TrainSettings, lineage: Lineage) -> PublishedVersion | None:
    if settings.parent is None:
        return lineage.current(settings.agent_name)
    found = lineage.get(settings.parent)
    if found is None:
        raise FulmenError(f"parent version {settings.parent!r} is not in the store")
    return found


def _with_version(result: JobResult, event: VersionEvent) -> JobResult:
    return JobResult(**{**asdict(result), "version": json.loads(event.model_dump_json())})


def write_result(result: JobResult, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(result), indent=2))
