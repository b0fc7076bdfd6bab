"""What a policy server serves: each model's public record (`ModelInfo`), the loaded variant
behind a request name, and the facts read off a loaded model (its end-of-completion ids, its
context length) or off the CPU (the precision `auto` resolves to)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, assert_never

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

Precision = Literal["auto", "float32", "bfloat16"]
"""How forward passes compute: ``auto`` is bf16 autocast where the CPU has native bf16
matmuls, fp32 elsewhere."""

ModelKind = Literal["base", "adapter", "weights"]


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """A servable model: its request name, what it is, where it was loaded from, for an
    adapter the base model it applies to, its context length, and when it was loaded."""

    name: str
    kind: ModelKind
    path: Path
    parent: str | None
    max_model_len: int
    created: int


@dataclass(eq=False, slots=True)
class Variant:
    """A loaded model behind a request name, with the leases of the requests using it; a
    retired one is freed when its last lease is released."""

    info: ModelInfo
    model: PreTrainedModel  # the module that runs it: the base model, for adapters
    tokenizer: PreTrainedTokenizerBase
    adapter_id: str | None  # peft's name of the adapter; unique, never reused
    eos_token_ids: frozenset[int]
    leases: int = 0
    retired: bool = False


def eos_token_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> frozenset[int]:
    """The ids that end a completion: the generation config's eos ids and the tokenizer's."""
    configured = model.generation_config.eos_token_id if model.generation_config else None
    ids = {configured} if isinstance(configured, int) else set(configured or ())
    if isinstance(tokenizer.eos_token_id, int):
        ids.add(tokenizer.eos_token_id)
    return frozenset(ids)


def context_length(model: PreTrainedModel) -> int:
    return int(getattr(model.config, "max_position_embeddings", 2048))


def resolve_precision(precision: Precision) -> Literal["float32", "bfloat16"]:
    match precision:
        case "float32" | "bfloat16":
            return precision
        case "auto":
            from fulmen.models._precision import cpu_has_bf16

            return "bfloat16" if cpu_has_bf16() else "float32"
        case _:
            assert_never(precision)
