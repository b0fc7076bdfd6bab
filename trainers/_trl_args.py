"""What every TRL trainer of a job is given alike: no checkpoints, no reports, a constant
learning rate, bf16 only where it pays, and a callback that reports progress."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from peft import PeftModel
from transformers import TrainerCallback

from fulmen.models._precision import Precision, uses_bf16


class StepReporter(TrainerCallback):
    """Tells `on_step(step, total)` after every optimizer step."""

    def __init__(self, on_step: Callable[[int, int], None]) -> None:
        self._on_step = on_step

    def on_step_end(self, args: object, state: object, control: object, **_: object) -> None:
        self._on_step(getattr(state, "global_step", 0), getattr(state, "max_steps", 0))


def job_args(
    scratch: str,
    model: PeftModel,
    *,
    learning_rate: float,
    epochs: int,
    max_steps: int,
    batch_size: int,
    seed: int,
    precision: Precision = "auto",
) -> dict[str, Any]:
    """The TRL config arguments shared by SFT, DPO and KTO jobs; `precision` picks the
    Trainer's bf16 mixed precision (`auto`: where it pays)."""
    return {
        "output_dir": scratch,
        "learning_rate": learning_rate,
        "num_train_epochs": epochs,
        "max_steps": max_steps,
        "per_device_train_batch_size": batch_size,
        "bf16": uses_bf16(model.device, precision),  # an AVX2-only CPU emulates bf16, slowly
        "use_cpu": not torch.cuda.is_available(),
        "seed": seed,
        "save_strategy": "no",
        "report_to": "none",
        "logging_steps": 1,
        "disable_tqdm": True,
        "lr_scheduler_type": "constant",
        "warmup_steps": 0,
    }


def steps_for(examples: int, *, batch_size: int, epochs: int, min_steps: int) -> int:
    """`epochs` passes over `examples`, and at least `min_steps` optimizer steps (cycling the
    examples where a window holds few of them)."""
    return max(min_steps, epochs * math.ceil(examples / batch_size))


def callbacks(on_step: Callable[[int, int], None] | None) -> list[TrainerCallback]:
    return [StepReporter(on_step)] if on_step else []


def final_loss(log_history: list[dict[str, float]]) -> float:
    losses = [entry["loss"] for entry in log_history if "loss" in entry]
    return float(losses[-1]) if losses else float("nan")
