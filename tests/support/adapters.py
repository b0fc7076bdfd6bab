"""LoRA adapters on disk for the policy server's tests."""

from __future__ import annotations

from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model

from fulmen.models import load_policy


def make_adapter(base_dir: Path, out: Path, *, changes_outputs: bool = True) -> Path:
    """A LoRA adapter with non-zero B, so that it changes the model's outputs; with
    `changes_outputs=False`, PEFT's own initialisation (B = 0): the base model's outputs."""
    model, _ = load_policy(base_dir)
    config = LoraConfig(
        r=4, lora_alpha=16, target_modules=["q_proj", "v_proj", "o_proj"],
        init_lora_weights=not changes_outputs,
    )  # fmt: skip
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        get_peft_model(model, config).save_pretrained(out)
    return out
