"""Load a policy (a causal LM and its tokenizer) from a Hugging Face directory, offline."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from fulmen.models._errors import ModelsError

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

__all__ = ["load_policy"]


def load_policy(
    path: Path, *, adapter: Path | None = None, dtype: torch.dtype | None = None
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load the causal LM at ``path`` and its tokenizer, in eval mode, from local files only.

    * ``adapter``: a PEFT (LoRA) adapter directory trained on this model; it is applied
      through peft and merged into the weights (``merge_and_unload``), so the result is a
      plain ``PreTrainedModel`` that computes what the adapted model computes. The tokenizer
      is the base model's.
    * ``dtype``: the weights' dtype; by default ``torch.float32`` (the CPU's fast path here;
      pass ``torch.bfloat16`` on a GPU).
    * The tokenizer has a pad token (its eos token when it names none).

    Raises:
        ModelsError: ``path`` (or ``adapter``) is not a directory with a ``config.json``
            (or an ``adapter_config.json``).
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel

    if not (path / "config.json").is_file():
        raise ModelsError(f"{path} is not a model directory (no config.json)")
    if adapter is not None and not (adapter / "adapter_config.json").is_file():
        raise ModelsError(f"{adapter} is not a PEFT adapter directory (no adapter_config.json)")
    model: PreTrainedModel = AutoModelForCausalLM.from_pretrained(
        path, dtype=dtype or torch.float32, local_files_only=True
    )
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if adapter is not None:
        from peft import PeftModel

        merged = PeftModel.from_pretrained(model, adapter, is_trainable=False).merge_and_unload()
        assert isinstance(merged, PreTrainedModel)  # peft annotates it as a bare nn.Module
        model = merged
    model.train(False)  # eval(); transformers' own eval() override is unannotated
    return model, tokenizer
