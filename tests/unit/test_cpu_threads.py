"""The torch thread count the demo measures for this CPU."""

from __future__ import annotations

import os

import pytest

from fulmen.models import OMP_NUM_THREADS, fastest_cpu_threads


def test_the_measured_count_is_one_of_the_cores_this_process_may_use(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import torch

    before = torch.get_num_threads()
    monkeypatch.delenv(OMP_NUM_THREADS, raising=False)
    try:
        threads = fastest_cpu_threads()
        assert 1 <= threads <= len(os.sched_getaffinity(0))
        assert torch.get_num_threads() == threads
    finally:
        torch.set_num_threads(before)


def test_a_count_given_in_the_environment_is_taken_as_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(OMP_NUM_THREADS, "1")
    assert fastest_cpu_threads() == 1
