"""Which precision the matmuls run in. bf16 autocast pays where the hardware has bf16
units (CUDA; CPUs with AMX or AVX-512 BF16, ~5x faster than fp32 there); on a CPU without
them (AVX2 only) torch emulates bf16 and runs several times *slower* than fp32, so autocast
is used only where it helps."""

from __future__ import annotations

import contextlib
import functools

import torch


@functools.cache
def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AMX tiles or AVX-512 BF16). torch has no
    public query for these features; the private helpers are plain functions returning
    bool (torch/cpu/__init__.py)."""
    return bool(torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported())


def bf16_pays(device: torch.device) -> bool:
    """Whether bf16 compute is faster than fp32 on `device`: CUDA, or a bf16-capable CPU."""
    return device.type == "cuda" or (device.type == "cpu" and cpu_has_bf16())


def autocast(device: torch.device) -> contextlib.AbstractContextManager[object]:
    """bf16 autocast where `bf16_pays`; a no-op (fp32) elsewhere."""
    if bf16_pays(device):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
