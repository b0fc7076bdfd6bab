"""A custom training algorithm: behaviour cloning of every episode that scored above the
window's median reward (not only each task's best, as Fulmen's `sft` does).

Run it like a built-in one; the job loads it by import path:

    fulmen train --algo examples.algorithms.above_median:AboveMedianCloning

A `ModelAlgorithm` subclass writes only `train_policy`: the job has already loaded the
parent's LoRA adapter, and gates, saves and publishes the result the same way as for `rl`
and `sft`.
"""

from __future__ import annotations

import statistics

from peft import PeftModel
from rich.progress import Progress
from transformers import PreTrainedTokenizerBase

from fulmen.trainers import EmptyWindow, ModelAlgorithm, train_sft


class AboveMedianCloning(ModelAlgorithm):
    """Fine-tune on the completions of the episodes above the window's median reward."""

    family = "sft"  # what its version events report; training_runs keeps the class path

    def train_policy(
        self, model: PeftModel, tokenizer: PreTrainedTokenizerBase, progress: Progress
    ) -> dict[str, float]:
        episodes = self.job.window.scored_episodes()
        median = statistics.median(e.reward for e in episodes) if episodes else 0.0
        chosen = [e.calls for e in episodes if e.reward > median]
        if not chosen:
            raise EmptyWindow(f"no episode scored above the median reward {median:.3f}")
        bar = progress.add_task("training (above-median cloning)", total=None)
        stats = train_sft(
            model,
            tokenizer,
            [call for calls in chosen for call in calls],
            settings=self.job.settings.sft,
            on_step=lambda i, n: progress.update(bar, completed=i, total=n),
        )
        return {"episodes_cloned": float(len(chosen)), "median_reward": median,
                "loss": stats.final_loss}  # fmt: skip
