"""A policy made ready for packed RL steps on a GPU: flex attention, compiled decoder layers.

Eager transformers launches a few thousand small kernels per micro-batch (norms, rotary
embeddings, activations, casts) and the GPU waits on the host; compiling each decoder layer
fuses them (PyTorch's regional compilation: one compiled graph serves every layer, same
code, parameters as inputs). Packed rows (`fulmen.trainers._rl_pack`) need an attention
that skips the blocks between samples: `flex_attention`, whose BlockMask transformers builds
from the restarting position ids.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import cast

from peft import PeftModel
from torch import nn
from transformers import PreTrainedModel

from fulmen.trainers._logprobs import CausalLM


@contextmanager
def packed_policy(policy: CausalLM, *, compile_layers: bool) -> Iterator[None]:
    """Inside, `policy` runs `flex_attention` and, with `compile_layers`, compiled decoder
    layers (`torch.compile`: shapes static until a second length is seen, then dynamic; pad
    packed rows to a bucket, `RLStepConfig.pack_bucket_tokens`, to keep recompiles few).
    On exit both are undone, so evaluation and generation run the model as it was. The
    numbers are the eager model's up to float rounding."""
    base = cast(
        PreTrainedModel, policy.get_base_model() if isinstance(policy, PeftModel) else policy
    )
    was = base.config._attn_implementation
    layers = list(cast(nn.ModuleList, policy.get_decoder().layers))
    base.set_attn_implementation("flex_attention")
    if compile_layers:
        for layer in layers:
            layer.compile()
    try:
        yield
    finally:
        base.set_attn_implementation(was)
        for layer in layers:
            layer._compiled_call_impl = None  # what Module.compile set; no public undo exists
