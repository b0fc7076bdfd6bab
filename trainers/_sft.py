"""SFT by rejection sampling: the best logged episode of each task, its LLM calls as
prompt → completion examples, trained with TRL's SFTTrainer on the policy's LoRA adapter
(loss on completion tokens only).

With several processes the Trainer splits each step's examples across ranks, `batch_size`
staying the examples of one optimizer step over all ranks, and its loss is the token mean
over all ranks' examples (`average_tokens_across_devices`), as in one process. On GPUs it
shards the policy with FSDP2 (accelerate's `fsdp_version` 2, one unit per decoder layer); on
CPUs accelerate has no FSDP and replicates the policy with DDP (gloo). The trained
parameters are then gathered into rank 0's policy, which gates."""

from __future__ import annotations

import copy
import math
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from datasets import Dataset
from peft import PeftModel
from transformers import PreTrainedTokenizerBase
from trl.trainer.sft_config import SFTConfig
from trl.trainer.sft_trainer import SFTTrainer

from fulmen.models._precision import Precision
from fulmen.trainers._distributed import SINGLE, Ranks
from fulmen.trainers._fsdp import gather_trained
from fulmen.trainers._trl_args import callbacks, final_loss, job_args, steps_for
from fulmen.trainers._window import LoggedCall


@dataclass(frozen=True, slots=True)
class SftSettings:
    learning_rate: float = 2e-4
    epochs: int = 2
    batch_size: int = 8
    min_steps: int = 8
    """At least this many optimizer steps, cycling the examples past `epochs` where a
    window holds few of them (a handful of successes otherwise moves the adapter too
    little to show)."""
    max_length: int = 1024
    seed: int = 0
    precision: Precision = "auto"
    """The Trainer's mixed precision: `auto` is bf16 where it pays (CUDA, CPUs with
    AMX/AVX-512 BF16), fp32 elsewhere."""


@dataclass(frozen=True, slots=True)
class SftStats:
    examples: int
    steps: int
    final_loss: float
    tokens: int


def sft_dataset(calls: Sequence[LoggedCall]) -> Dataset:
    """Pre-tokenized prompt + completion rows (the logged token ids, so the model learns
    exactly what it was served), deduplicated."""
    unique = sorted({(c.prompt_ids, c.response_ids) for c in calls if c.response_ids})
    return Dataset.from_dict(
        {
            "input_ids": [list(p) + list(r) for p, r in unique],
            "completion_mask": [[0] * len(p) + [1] * len(r) for p, r in unique],
        }
    )


def train_sft(
    model: PeftModel,
    tokenizer: PreTrainedTokenizerBase,
    calls: Sequence[LoggedCall],
    *,
    settings: SftSettings,
    on_step: Callable[[int, int], None] | None = None,
    ranks: Ranks = SINGLE,
) -> SftStats:
    """Fine-tune `model`'s adapter in place on `calls`' completions (on rank 0's `model`
    when `ranks.distributed`: every rank calls this with the same `calls`)."""
    dataset = sft_dataset(calls)
    # Rank 0 keeps its policy whole for the gate; the Trainer shards a copy in place.
    trained = copy.deepcopy(model) if ranks.distributed and ranks.main else model
    with tempfile.TemporaryDirectory(prefix="fulmen-sft-") as scratch:
        steps = steps_for(
            len(dataset),
            batch_size=settings.batch_size,
            epochs=settings.epochs,
            min_steps=settings.min_steps,
        )
        config = SFTConfig(
            **job_args(
                scratch,
                model,
                learning_rate=settings.learning_rate,
                epochs=settings.epochs,
                max_steps=steps,
                batch_size=math.ceil(settings.batch_size / ranks.world_size),
                seed=settings.seed,
                precision=settings.precision,
            ),
            max_length=settings.max_length,
            completion_only_loss=True,
            # The loss is the token mean over all ranks' examples, as in one process (not the
            # mean of per-rank means); the default, pinned because the sharded update needs it.
            average_tokens_across_devices=True,
            fsdp="full_shard" if ranks.distributed else "",
            fsdp_config=_fsdp2(trained) if ranks.distributed else None,
        )
        trainer = SFTTrainer(
            model=trained,
            args=config,
            train_dataset=dataset,
            processing_class=tokenizer,
            callbacks=callbacks(on_step),
        )
        result = trainer.train()
        if ranks.distributed:
            assert isinstance(trainer.model, torch.nn.Module)
            gather_trained(trainer.model, model, ranks=ranks)
    return SftStats(
        examples=len(dataset),
        steps=result.global_step,
        final_loss=final_loss(trainer.state.log_history),
        tokens=sum(len(ids) for ids in dataset["input_ids"]),
    )


def _fsdp2(model: PeftModel) -> dict[str, object]:
    """The Trainer's FSDP2 configuration (with `fsdp="full_shard"`): one unit per decoder
    layer."""
    layer = type(model.get_decoder().layers[0]).__name__
    return {
        "fsdp_version": 2,
        "transformer_layer_cls_to_wrap": [layer],
        "reshard_after_forward": True,
    }
