"""Model shapes of the trainer bench (random init from configs built here, nothing downloaded)
and how many FLOPs a step over them is worth (model FLOPs utilization, MFU)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from fulmen.trainers._samples import Sample

SHAPES = ("smollm2-135m", "qwen2-0.5b", "qwen2-1.5b", "qwen2-7b")

H200_BF16_PEAK = 790e12
"""Dense bf16 matrix rate measured on this workplace's H200s (an 8192^3 product on random
data through PyTorch: 769-798 TFLOP/s), not the datasheet's 989: what the card sustains is
the honest ceiling for a utilization figure."""


def model_config(shape: str) -> Any:
    """The published architecture of `shape` (vocabulary, widths, depth, heads) as a config."""
    from transformers import LlamaConfig, Qwen2Config

    qwen2 = {"max_position_embeddings": 32768, "rope_theta": 1000000.0}
    match shape:
        case "smollm2-135m":
            return LlamaConfig(
                vocab_size=49152, hidden_size=576, num_hidden_layers=30, num_attention_heads=9,
                num_key_value_heads=3, intermediate_size=1536, max_position_embeddings=8192,
                tie_word_embeddings=True, rope_theta=100000.0,
            )  # fmt: skip
        case "qwen2-0.5b":
            return Qwen2Config(
                vocab_size=151936, hidden_size=896, num_hidden_layers=24, num_attention_heads=14,
                num_key_value_heads=2, intermediate_size=4864, tie_word_embeddings=True, **qwen2,
            )  # fmt: skip
        case "qwen2-1.5b":
            return Qwen2Config(
                vocab_size=151936, hidden_size=1536, num_hidden_layers=28, num_attention_heads=12,
                num_key_value_heads=2, intermediate_size=8960, tie_word_embeddings=True, **qwen2,
            )  # fmt: skip
        case "qwen2-7b":
            return Qwen2Config(
                vocab_size=152064, hidden_size=3584, num_hidden_layers=28, num_attention_heads=28,
                num_key_value_heads=4, intermediate_size=18944, tie_word_embeddings=False,
                **qwen2,
            )  # fmt: skip
    raise SystemExit(f"unknown shape {shape!r}")


def step_flops(model: nn.Module, config: Any, samples: Sequence[Sample]) -> float:
    """Model FLOPs of one optimizer step over `samples` (forward + backward), counting every
    token the model reads (prompt and response):

    - matmuls: 6 x parameters x tokens when every parameter trains (2 forward, 2 for the
      input gradients, 2 for the weight gradients); with frozen weights (LoRA) those skip
      their weight gradients: 4 x frozen + 6 x trainable parameters, x tokens. Parameters
      are counted once (a tied embedding/LM head once).
    - attention: 6 x layers x hidden x L^2 per sample of L tokens (QK^T and AV, 2 L^2 d each,
      halved by the causal mask, x3 for the backward).

    Work a step does beyond this (recomputed LM-head chunks, padding) is not counted."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    tokens = sum(s.num_tokens for s in samples)
    attention = 6 * config.num_hidden_layers * config.hidden_size
    return float(
        (4 * frozen + 6 * trainable) * tokens + attention * sum(s.num_tokens**2 for s in samples)
    )


def head_flops_not_needed(model: nn.Module, config: Any, samples: Sequence[Sample]) -> float:
    """The part of `step_flops` that no RL step has to do: the LM head (vocab x hidden, tied
    or not) on prompt positions, which predict no scored token; and, with an untied
    embedding, the input embedding matrix, a lookup rather than a matmul. `step_flops` minus
    this is the work the step needs, the stricter utilization figure."""
    head = config.vocab_size * config.hidden_size
    trains = model.get_output_embeddings().weight.requires_grad
    per_token = (6 if trains else 4) * head
    prompt = sum(len(s.prompt_ids) for s in samples)
    embedding = 0 if config.tie_word_embeddings else per_token * sum(s.num_tokens for s in samples)
    return float(per_token * prompt + embedding)
