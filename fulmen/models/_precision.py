"""Which precision the matmuls run in. bf16 autocast pays where the hardware has bf16
units (CUDA; CPUs with AMX or AVX-512 BF16, ~5x faster than fp32 there); on a CPU without
them (AVX2 only) torch emulates bf16 and runs several times *slower* than fp32, so autocast
is used only where it helps."""

from __future__ import annotations

import contextlib
import functools
from typing import Literal, assert_never

import torch

Precision = Literal["auto", "bf16", "fp32"]
"""`auto`: bf16 where it pays (`bf16_pays`), fp32 elsewhere. `bf16` forces bf16 autocast even
where torch emulates it (slow, but the same numerics: how tests cover the bf16 path on any
CPU); `fp32` turns autocast off."""


@functools.cache
def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AMX tiles or AVX-512 BF16). torch has no
    public query for these features; the private helpers are plain functions returning
    bool (torch/cpu/__init__.py)."""
    return bool(torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported())


@functools.cache
def cpu_has_amx() -> bool:
    """Whether this CPU has AMX tiles (Intel Xeon since Sapphire Rapids)."""
    return bool(torch.cpu._is_amx_tile_supported())


def decode_precision(device: torch.device, precision: Precision) -> Precision:
    """The precision token-by-token decoding runs in: `auto` is bf16 on CUDA and AMX CPUs
    only. With AVX-512 BF16 alone (AMD EPYC Zen 4) a bf16 decode step of SmolLM2-135M at
    batch 64 took 2.2x as long as fp32 (1.39 s against 0.63 s), while a training step
    took 0.57x (12.6 s against 22.1 s): decoding's small matmuls lose to the casts."""
    if precision != "auto" or device.type != "cpu":
        return precision
    return "bf16" if cpu_has_amx() else "fp32"


def bf16_pays(device: torch.device) -> bool:
    """Whether bf16 compute is faster than fp32 on `device`: CUDA, or a bf16-capable CPU."""
    return device.type == "cuda" or (device.type == "cpu" and cpu_has_bf16())


def uses_bf16(device: torch.device, precision: Precision) -> bool:
    """Whether `precision` computes in bf16 on `device`: `bf16`, or `auto` where `bf16_pays`."""
    return precision == "bf16" or (precision == "auto" and bf16_pays(device))


def autocast(
    device: torch.device, precision: Precision = "auto"
) -> contextlib.AbstractContextManager[object]:
    """bf16 autocast for `precision` `bf16`, or `auto` where `bf16_pays`; fp32 otherwise."""
    match precision:
        case "auto":
            return autocast(device, "bf16" if bf16_pays(device) else "fp32")
        case "bf16":
            return torch.autocast(device.type, dtype=torch.bfloat16)
        case "fp32":
            return contextlib.nullcontext()
        case _:
            assert_never(precision)
