"""Algorithms that publish model versions: train the parent's LoRA adapter (or a fresh one
on the base), gate it against the parent on held-out tasks with greedy decoding, and save
the adapter as the version's artifact. `ModelAlgorithm.train_policy` is the one method a
subclass writes; `Rl` and `Sft` are Fulmen's own."""

from __future__ import annotations

import math
import time
from abc import abstractmethod
from pathlib import Path

from peft import PeftModel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from transformers import PreTrainedTokenizerBase

from fulmen._progress import progress_for
from fulmen.errors import FulmenError
from fulmen.models import base_model_dir
from fulmen.producers import version_meta
from fulmen.schemas import VersionEvent
from fulmen.tasks._task import load_task
from fulmen.trainers._algorithm import Algorithm, EmptyWindow, GatedCandidate, JobContext
from fulmen.trainers._gate import (
    GateDecision,
    decide,
    evaluate_with_progress,
    heldout_fingerprint,
    known_score,
)
from fulmen.trainers._lineage import Lineage, PublishedVersion
from fulmen.trainers._policy import trainable_policy
from fulmen.trainers._rl import rl_samples, train_rl
from fulmen.trainers._sft import train_sft
from fulmen.trainers._window import best_episodes

PROGRESS_COLUMNS = (
    TextColumn("{task.description}"),
    BarColumn(),
    MofNCompleteColumn(),
    TimeElapsedColumn(),
)

BASE_VERSION = ""
"""What agents stamp on their events before any version was published."""


class ModelAlgorithm(Algorithm):
    """Trains a LoRA adapter; the parent is `--parent`, else the version in force for the
    job's agent (from the store's `versions` lineage). In a multi-process job every rank
    loads the policy and runs `train_policy` (`Rl` and `Sft` train sharded; a subclass that
    ignores `job.ranks` trains the whole window on every rank); rank 0 alone evaluates the
    parent and the candidate, and saves the adapter."""

    distributed = True

    def __init__(self, job: JobContext) -> None:
        super().__init__(job)
        self.lineage = Lineage.from_store(job.store)
        self.parent = _parent(job, self.lineage)

    def parent_version(self) -> str | None:
        return self.parent.version_id if self.parent else None

    @abstractmethod
    def train_policy(
        self, model: PeftModel, tokenizer: PreTrainedTokenizerBase, progress: Progress
    ) -> dict[str, float]:
        """Train `model` (the parent's adapter, trainable) on `job.window`; return metrics.
        Raises `EmptyWindow` when the window holds nothing to train on."""

    def recipe(self) -> dict[str, str]:
        """What the version records of its training beyond its algorithm (its lineage's
        `recipe`); nothing by default."""
        return {}

    def train_and_gate(self) -> GatedCandidate:
        settings = self.job.settings
        task = load_task(settings.task)
        cases = task.heldout(settings.gate.heldout_tasks)
        base = base_model_dir() if settings.base_model == "smollm2" else Path(settings.base_model)
        adapter = (
            Path(self.parent.artifact_uri) if self.parent and self.parent.artifact_uri else None
        )
        model, tokenizer = trainable_policy(base, adapter, lora=settings.lora, seed=settings.seed)
        if self.job.ranks.distributed and self.job.ranks.main:  # gates on its GPU, if any
            model.to(self.job.ranks.device)
        with progress_for(self.job.console, *PROGRESS_COLUMNS) as progress:

            def evaluate(label: str) -> float:
                return evaluate_with_progress(
                    progress, label, model, tokenizer, task, cases, settings.gate
                )

            fingerprint = heldout_fingerprint(settings.task, settings.gate)
            known = known_score(self.parent.metrics, fingerprint) if self.parent else None
            if not self.job.ranks.main:  # its share of the training; rank 0 gates
                return _trained_elsewhere(self.train_policy(model, tokenizer, progress))
            started = time.monotonic()
            before = evaluate("held-out reward, parent") if known is None else known
            parent_seconds = time.monotonic() - started if known is None else 0.0
            metrics = self.train_policy(model, tokenizer, progress)
            after = evaluate("held-out reward, candidate")
        metrics |= {
            "heldout_reward_parent": before,
            "heldout_reward": after,
            "heldout_fingerprint": fingerprint,
            "heldout_parent_reused": float(known is not None),
            "heldout_parent_seconds": parent_seconds,
        }
        decision = decide(before, after, min_gain=settings.gate.min_gain)
        return GatedCandidate(metrics, decision, lambda: self._version(model, metrics))

    def _version(self, model: PeftModel, metrics: dict[str, float]) -> VersionEvent:
        settings, window = self.job.settings, self.job.window
        artifact = (settings.artifacts_dir / self.job.candidate).resolve()
        model.save_pretrained(str(artifact))
        agent = settings.agent_name or "agent"
        return VersionEvent(
            meta=version_meta(),
            version_id=self.job.candidate,
            kind="model",
            target_agent=settings.agent_name,
            parent_version=self.parent_version(),
            algorithm=self.family,
            window_id=window.window_id,
            dataset_hash=window.snapshot.sha256,
            artifact_uri=str(artifact),
            model_name=f"{agent}-{self.job.candidate}",
            metrics=metrics,
            recipe=self.recipe(),
        )


class Rl(ModelAlgorithm):
    """RL on the logged episodes: GRPO-style group advantages, decoupled PPO clip with
    truncated importance weights against the logged behaviour logprobs (`train_rl`)."""

    family = "rl"

    def train_policy(
        self, model: PeftModel, tokenizer: PreTrainedTokenizerBase, progress: Progress
    ) -> dict[str, float]:
        settings = self.job.settings
        parents: dict[str, str | None] = {BASE_VERSION: None}
        parents |= {v: p or BASE_VERSION for v, p in self.lineage.parents().items()}
        data = rl_samples(
            self.job.window,
            parent=self.parent_version() or BASE_VERSION,
            parents=parents,
            max_staleness=settings.rl.max_staleness,
        )
        if not data.samples:
            raise EmptyWindow(
                f"no RL samples: {data.stale} stale, {data.missing_logprobs} without "
                f"logprobs, {data.zero_advantage} with zero advantage, {data.unscored} unscored"
            )
        bar = progress.add_task("training (rl)", total=None)
        steps = train_rl(
            model,
            data,
            settings=settings.rl,
            on_step=lambda i, n, s: progress.update(bar, completed=i, total=n),
            ranks=self.job.ranks,
        )
        return {
            "samples": float(len(data.samples)),
            "dropped_stale": float(data.stale),
            "steps": float(len(steps)),
            "loss": steps[-1].loss,
            "tokens": float(sum(s.tokens for s in steps)),
            "train_seconds": sum(s.seconds for s in steps),
        }


class Sft(ModelAlgorithm):
    """Rejection-sampling SFT: each task's best episode from `sft_min_reward` up, TRL's
    SFTTrainer on the logged token ids, loss on the completions only (`train_sft`)."""

    family = "sft"

    def train_policy(
        self, model: PeftModel, tokenizer: PreTrainedTokenizerBase, progress: Progress
    ) -> dict[str, float]:
        settings = self.job.settings
        episodes = best_episodes(self.job.window, min_reward=settings.sft_min_reward)
        calls = [call for episode in episodes for call in episode]
        if not calls:
            raise EmptyWindow(f"no episode reached reward {settings.sft_min_reward}")
        bar = progress.add_task("training (sft)", total=None)
        stats = train_sft(
            model,
            tokenizer,
            calls,
            settings=settings.sft,
            on_step=lambda i, n: progress.update(bar, completed=i, total=n),
            ranks=self.job.ranks,
        )
        return {
            "examples": float(stats.examples),
            "steps": float(stats.steps),
            "loss": stats.final_loss,
            "tokens": float(stats.tokens),
        }


def _trained_elsewhere(metrics: dict[str, float]) -> GatedCandidate:
    """What a rank other than 0 returns: it trained its share; rank 0 gates and publishes."""

    def not_here() -> VersionEvent:
        raise FulmenError("only rank 0 builds the version")

    decision = GateDecision(math.nan, math.nan, passed=False, reason="gated on rank 0")
    return GatedCandidate(metrics, decision, not_here)


def _parent(job: JobContext, lineage: Lineage) -> PublishedVersion | None:
    if job.settings.parent is None:
        return lineage.current(job.settings.agent_name)
    found = lineage.get(job.settings.parent)
    if found is None:
        raise FulmenError(f"parent version {job.settings.parent!r} is not in the store")
    return found
