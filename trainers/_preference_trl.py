"""DPO and KTO on logged token ids, through TRL's DPOTrainer and KTOTrainer.

TRL's trainers take text (`prompt`, `chosen`, `rejected` / `completion`) and tokenize it
with the chat template in `_prepare_dataset`; their collators then read the token-id
columns that step made (`prompt_ids`, `chosen_ids`, `rejected_ids` / `completion_ids`).
Re-tokenizing decoded text would not give back the ids the model was served (merges at
the prompt boundary, a template that renders a prompt alone differently), so the trainers
here are given those columns from the logged ids and `_prepare_dataset` passes them
through. The rest — losses, the reference policy, LoRA — is TRL's: with no `ref_model`
and a PEFT model, TRL copies the adapter as a frozen `ref` adapter (the parent version is
the reference), which is deleted after training so that only the trained adapter is saved.
"""

from __future__ import annotations

import random
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from datasets import Dataset, IterableDataset
from peft import PeftModel
from transformers import PreTrainedTokenizerBase, ProcessorMixin
from trl.trainer.dpo_config import DPOConfig
from trl.trainer.dpo_trainer import DPOTrainer
from trl.trainer.kto_config import KTOConfig
from trl.trainer.kto_trainer import KTOTrainer

from fulmen.trainers._pairing import JudgedCompletion, PreferencePair
from fulmen.trainers._trl_args import callbacks, final_loss, job_args, steps_for

_REFERENCE_ADAPTER = "ref"


@dataclass(frozen=True, slots=True)
class PreferenceSettings:
    """One preference trainer's hyper-parameters (`TrainSettings.dpo`, `.kto`)."""

    learning_rate: float = 2e-4
    beta: float = 0.1
    """How far the policy may move from the parent (TRL's β: higher stays closer)."""
    epochs: int = 2
    batch_size: int = 8
    min_steps: int = 8
    """At least this many optimizer steps, cycling the data where a window holds little."""
    sft_weight: float = 0.0
    """DPO only: weight of an SFT loss on the chosen completions beside the DPO loss (RPO);
    keeps the chosen answers likely while the rejected ones are pushed down. `TrainSettings`
    gives DPO 1.0."""
    max_length: int = 1024
    seed: int = 0


@dataclass(frozen=True, slots=True)
class PreferenceStats:
    examples: int
    """Pairs (DPO) or judged completions (KTO)."""
    steps: int
    final_loss: float


class _LoggedIdsDpo(DPOTrainer):
    def _prepare_dataset(
        self,
        dataset: Dataset | IterableDataset,
        processing_class: PreTrainedTokenizerBase | ProcessorMixin,
        args: DPOConfig,
        dataset_name: str,
    ) -> Dataset | IterableDataset:
        return dataset  # already `prompt_ids`, `chosen_ids`, `rejected_ids`: the logged ids


class _LoggedIdsKto(KTOTrainer):
    def _prepare_dataset(
        self,
        dataset: Dataset | IterableDataset,
        processing_class: PreTrainedTokenizerBase | ProcessorMixin,
        args: KTOConfig,
        dataset_name: str,
    ) -> Dataset | IterableDataset:
        if not self.calculate_KL:
            return dataset

        # TRL's own estimate of the KL term: each batch's completions rotated by one, so
        # every prompt meets a completion of another prompt (as its `_prepare_dataset` does).
        def rotate(batch: dict[str, list[list[int]]]) -> dict[str, list[list[int]]]:
            completions = batch["completion_ids"]
            return {"KL_completion_ids": completions[-1:] + completions[:-1]}

        return dataset.map(rotate, batched=True, batch_size=args.per_device_train_batch_size)


def dpo_dataset(pairs: Sequence[PreferencePair]) -> Dataset:
    return Dataset.from_dict(
        {
            "prompt_ids": [list(p.prompt_ids) for p in pairs],
            "chosen_ids": [list(p.chosen_ids) for p in pairs],
            "rejected_ids": [list(p.rejected_ids) for p in pairs],
        }
    )


def kto_dataset(judged: Sequence[JudgedCompletion], *, seed: int) -> Dataset:
    """The judged completions in a fixed order that spreads each label evenly: KTO reads
    them sequentially (its KL estimate pairs neighbours), and a batch of undesirable answers
    alone makes an optimizer step that only pushes probability down — with Adam's
    normalised steps, a run of such batches lowers the desirable answers too. Each label's
    rows are shuffled (seeded) and placed at even intervals, so every batch holds the two
    labels in about the window's proportion."""
    rng = random.Random(seed)
    placed: list[tuple[float, JudgedCompletion]] = []
    for label in (True, False):
        rows = [j for j in judged if j.desirable is label]
        rng.shuffle(rows)
        placed += [((k + rng.random()) / len(rows), row) for k, row in enumerate(rows)]
    rows = [row for _, row in sorted(placed, key=lambda item: item[0])]
    return Dataset.from_dict(
        {
            "prompt_ids": [list(j.prompt_ids) for j in rows],
            "completion_ids": [list(j.completion_ids) for j in rows],
            "label": [j.desirable for j in rows],
        }
    )


def train_dpo(
    model: PeftModel,
    tokenizer: PreTrainedTokenizerBase,
    pairs: Sequence[PreferencePair],
    *,
    settings: PreferenceSettings,
    on_step: Callable[[int, int], None] | None = None,
) -> PreferenceStats:
    """Train `model`'s adapter in place with DPO (sigmoid loss, the adapter as it was as the
    reference) on `pairs`."""
    dataset = dpo_dataset(pairs)
    losses, weights = ["sigmoid"], [1.0]
    if settings.sft_weight > 0:
        losses, weights = ["sigmoid", "sft"], [1.0, settings.sft_weight]

    def config(scratch: str) -> DPOConfig:
        args = _args(scratch, model, len(dataset), settings)
        return DPOConfig(**args, beta=settings.beta, loss_type=losses, loss_weights=weights)

    return _train(_LoggedIdsDpo, config, model, tokenizer, dataset, on_step)


def train_kto(
    model: PeftModel,
    tokenizer: PreTrainedTokenizerBase,
    judged: Sequence[JudgedCompletion],
    *,
    settings: PreferenceSettings,
    on_step: Callable[[int, int], None] | None = None,
) -> PreferenceStats:
    """Train `model`'s adapter in place with KTO on `judged`, desirable and undesirable
    completions weighted so that both kinds weigh alike whatever their counts."""
    dataset = kto_dataset(judged, seed=settings.seed)
    desirable = sum(1 for j in judged if j.desirable)
    undesirable = len(judged) - desirable

    def config(scratch: str) -> KTOConfig:
        return KTOConfig(
            **_args(scratch, model, len(dataset), settings),
            beta=settings.beta,
            # KTO's paper: weigh the rarer kind up, so that λ_D·n_D ≈ λ_U·n_U.
            desirable_weight=max(1.0, undesirable / max(desirable, 1)),
            undesirable_weight=max(1.0, desirable / max(undesirable, 1)),
        )

    return _train(_LoggedIdsKto, config, model, tokenizer, dataset, on_step)


def _train(
    trainer_class: type[_LoggedIdsDpo] | type[_LoggedIdsKto],
    config: Callable[[str], Any],
    model: PeftModel,
    tokenizer: PreTrainedTokenizerBase,
    dataset: Dataset,
    on_step: Callable[[int, int], None] | None,
) -> PreferenceStats:
    with tempfile.TemporaryDirectory(prefix="fulmen-preference-") as scratch:
        trainer = trainer_class(
            model=model, args=config(scratch), train_dataset=dataset,
            processing_class=tokenizer, callbacks=callbacks(on_step),
        )  # fmt: skip
        result = trainer.train()
    if _REFERENCE_ADAPTER in model.peft_config:  # TRL's frozen copy of the parent's adapter
        model.delete_adapter(_REFERENCE_ADAPTER)
    model.set_adapter("default")
    return PreferenceStats(len(dataset), result.global_step, final_loss(trainer.state.log_history))


def _args(
    scratch: str, model: PeftModel, examples: int, settings: PreferenceSettings
) -> dict[str, Any]:
    steps = steps_for(
        examples, batch_size=settings.batch_size, epochs=settings.epochs,
        min_steps=settings.min_steps,
    )  # fmt: skip
    return job_args(
        scratch, model, learning_rate=settings.learning_rate, epochs=settings.epochs,
        max_steps=steps, batch_size=settings.batch_size, seed=settings.seed,
    ) | {
        "max_length": settings.max_length,
        # A 135M-parameter policy on a short window fits without recomputing activations,
        # which would cost a third more compute per step.
        "gradient_checkpointing": False,
        "remove_unused_columns": False,
    }  # fmt: skip
