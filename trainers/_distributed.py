"""The processes of one trainer job.

`fulmen train` under `torchrun` (or in the pods of a multi-pod Job, which set the same
variables: `RANK`, `WORLD_SIZE`, `LOCAL_RANK`, `MASTER_ADDR`, `MASTER_PORT`) joins a process
group: every rank trains its share of each step's samples on its shard of the model, and
rank 0 alone reads the window, gates, writes the artifact and publishes. Without
`WORLD_SIZE` the job is one process, as always, and no process group exists.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar, cast

import torch
import torch.distributed as dist

from fulmen.trainers._samples import Sample

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Ranks:
    """Where this process stands in its job. `distributed` is False for a lone process
    (no `WORLD_SIZE`): then nothing is sharded and no collective is ever called."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    distributed: bool = False

    @property
    def main(self) -> bool:
        """Rank 0: reads the window, gates, writes the artifact, publishes, records."""
        return self.rank == 0

    @property
    def device(self) -> torch.device:
        """Where this rank's shard lives: its GPU (`LOCAL_RANK`), else the CPU."""
        if torch.cuda.is_available():
            return torch.device("cuda", self.local_rank)
        return torch.device("cpu")


SINGLE = Ranks()
"""One process: the job as it runs without torchrun."""


@contextlib.contextmanager
def process_group(*, timeout: timedelta) -> Iterator[Ranks]:
    """This process's `Ranks`, in a process group while the block runs when `WORLD_SIZE` is
    set (even to 1), else `SINGLE`. The group carries CPU tensors over gloo and CUDA ones
    over NCCL; `timeout` bounds any collective, rank 0's gate included (the other ranks wait
    for its result)."""
    if "WORLD_SIZE" not in os.environ:
        yield SINGLE
        return
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
    backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend=backend, timeout=timeout)
    try:
        yield Ranks(dist.get_rank(), dist.get_world_size(), local_rank, distributed=True)
    finally:
        dist.destroy_process_group()


def rank_share(samples: Sequence[Sample], ranks: Ranks) -> list[Sample]:
    """This rank's samples of one optimizer step: longest first, each goes to the rank with
    the fewest tokens so far (ties to the lower rank), so ranks get about equal work.
    Deterministic: every rank computes the same split, and each sample lands on exactly one
    rank, in the order of `samples`."""
    if not ranks.distributed:
        return list(samples)
    load = [0] * ranks.world_size
    owner = [0] * len(samples)
    by_length = sorted(range(len(samples)), key=lambda i: samples[i].num_tokens, reverse=True)
    for index in by_length:
        rank = min(range(ranks.world_size), key=lambda r: (load[r], r))
        owner[index] = rank
        load[rank] += samples[index].num_tokens
    return [s for s, o in zip(samples, owner, strict=True) if o == ranks.rank]


def from_main(value: T, ranks: Ranks) -> T:
    """Rank 0's `value` on every rank (pickled): what rank 0 alone read or decided. A
    collective: every rank calls it, in the same order."""
    if not ranks.distributed:
        return value
    box: list[object] = [value]
    dist.broadcast_object_list(box, src=0)
    return cast(T, box[0])
