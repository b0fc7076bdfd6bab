"""The policy a job trains: the base model with the parent version's LoRA adapter (or a
fresh one), so every version is an adapter over one base, the form vLLM serves."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase


@dataclass(frozen=True, slots=True)
class LoraSettings:
    """The adapter a first version starts with; later versions continue their parent's."""

    rank: int = 16
    alpha: int = 32
    dropout: float = 0.0
    target_modules: str = "all-linear"


def trainable_policy(
    base_dir: Path, parent_adapter: Path | None, *, lora: LoraSettings, seed: int = 0
) -> tuple[PeftModel, PreTrainedTokenizerBase]:
    """Load the base model in fp32 (the optimizer's master weights; compute runs under bf16
    autocast) with the parent's adapter, trainable, or a new zero-effect adapter initialised
    from `seed` (so every process of a job, and every run, starts from the same one)."""
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    if parent_adapter is not None:
        model = PeftModel.from_pretrained(base, parent_adapter, is_trainable=True)
    else:
        torch.manual_seed(seed)
        config = LoraConfig(
            r=lora.rank,
            lora_alpha=lora.alpha,
            lora_dropout=lora.dropout,
            target_modules=lora.target_modules,
            task_type="CAUSAL_LM",
        )
        model = get_peft_model(base, config)
    return model, tokenizer
