"""Which precision decoding runs in: `auto` is bf16 on CUDA and on CPUs with AMX only (a
CPU with AVX-512 BF16 alone decodes slower in bf16 than in fp32); a forced precision is
kept everywhere."""

from __future__ import annotations

import pytest
import torch

from fulmen.models import _precision
from fulmen.models._precision import Precision, decode_precision

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


@pytest.mark.parametrize(("amx", "expected"), [(True, "bf16"), (False, "fp32")])
def test_auto_decodes_in_bf16_on_a_cpu_only_with_amx(
    monkeypatch: pytest.MonkeyPatch, amx: bool, expected: str
) -> None:
    monkeypatch.setattr(_precision, "cpu_has_amx", lambda: amx)
    assert decode_precision(CPU, "auto") == expected


def test_cuda_and_forced_precisions_are_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_precision, "cpu_has_amx", lambda: False)
    assert decode_precision(CUDA, "auto") == "auto"  # autocast picks bf16 on CUDA
    forced_precisions: tuple[Precision, ...] = ("bf16", "fp32")
    for forced in forced_precisions:
        assert decode_precision(CPU, forced) == forced
        assert decode_precision(CUDA, forced) == forced
