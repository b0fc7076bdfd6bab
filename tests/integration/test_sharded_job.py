"""`fulmen train` under torchrun: 2 processes (gloo, CPU) train the same window as one process
and publish the same version, for RL (our FSDP2 step) and SFT (TRL's SFTTrainer under
accelerate). One store engine, served over HTTP (as the scheduler serves it to local jobs),
holds two databases with the same episodes: one per run, so each run starts from the base and
both publish a first version.

On a CPU accelerate has no FSDP (its multi-CPU mode is DDP): the SFT case runs the Trainer's
gloo DDP, the policy replicated and gradients all-reduced, not sharded; its FSDP2 engages on
GPUs only. What it proves on the CPU is the rest of the sharded path: the split of each step's
examples, the loss normalisation across ranks, and the gathering into rank 0, which gates.

Tolerance: the LoRA weights of the two artifacts agree to 1e-4 (absolute). fp32 compute
(`FULMEN_TRAIN_RL__PRECISION`, `FULMEN_TRAIN_SFT__PRECISION`), the same seeded fresh adapter,
the same examples in every optimizer step; the runs differ in summation order only (two
ranks' gradients reduced across processes vs one process's batch; 1 vs 2 OpenMP threads), so
the gradients agree to fp32 rounding (~1e-7 relative). For SFT the Trainer's
`average_tokens_across_devices` (pinned on in `train_sft`) makes the loss the token mean over
both ranks' examples, as in one process, not the mean of two per-rank means: with it off,
the weights of a window like this one differ by ~2e-2, which the tolerance catches. AdamW
divides each gradient by its own running scale, so the updates carry the same ~1e-7 relative
error: ~1e-9 absolute a step at learning rates of a few 1e-3, far below 1e-4 after a few
steps (measured: SFT's weights came out bitwise equal, below the weights' fp32 spacing;
losses within 1e-6).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from fulmen.models import tiny_model_dir
from fulmen.store import LightningStore, StoreSettings, client_env, shared_store
from tests.support.calls import insert_scored_calls

pytestmark = pytest.mark.timeout(300)

ROOT = Path(__file__).resolve().parents[2]
FULMEN = Path(sys.executable).parent / "fulmen"  # the console script of this environment
TOLERANCE = 1e-4


@dataclass(frozen=True)
class Case:
    """One algorithm's window and settings, and the metrics both runs must report alike."""

    algo: str
    tasks: int
    counts: tuple[str, ...]
    env: dict[str, str]


RL_ENV = {
    "FULMEN_TRAIN_RL__PRECISION": "fp32", "FULMEN_TRAIN_RL__LEARNING_RATE": "3e-3",
    "FULMEN_TRAIN_RL__BATCH_SIZE": "12", "FULMEN_TRAIN_RL__EPOCHS": "2",
}  # fmt: skip
# Rejection sampling keeps each task's reward-1 episode: 8 examples, one step's batch (4 a
# rank), so every step trains the same examples alone and on two ranks.
SFT_ENV = {
    "FULMEN_TRAIN_SFT__PRECISION": "fp32", "FULMEN_TRAIN_SFT__LEARNING_RATE": "3e-3",
    "FULMEN_TRAIN_SFT__BATCH_SIZE": "8", "FULMEN_TRAIN_SFT__MIN_STEPS": "4",
}  # fmt: skip
CASES = [
    pytest.param(Case("rl", 6, ("samples", "steps", "tokens", "dropped_stale"), RL_ENV), id="rl"),
    pytest.param(Case("sft", 8, ("examples", "steps", "tokens"), SFT_ENV), id="sft"),
]


def _train(command: list[str], env: dict[str, str], tmp: Path) -> dict[str, Any]:
    done = subprocess.run(
        command, env=os.environ | env, cwd=ROOT, capture_output=True, text=True, timeout=240,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    # The JSON result; TRL's Trainer prints its step logs there too, as Python dicts.
    lines = [line for line in done.stdout.splitlines() if line.startswith('{"')]
    assert len(lines) == 1, done.stdout  # rank 0 alone reports
    result: dict[str, Any] = json.loads(lines[0])
    return result


def _rows(store: LightningStore, table: str, columns: str) -> list[dict[str, Any]]:
    db = store.settings.database
    rows: list[dict[str, Any]] = store.sql(f"SELECT {columns} FROM {db}.{table}").to_pylist()
    return rows


@pytest.mark.parametrize("case", CASES)
def test_two_processes_train_the_same_version_as_one(
    case: Case, new_store: Callable[[], LightningStore], chdb_path: Path, tmp_path: Path
) -> None:
    base = tiny_model_dir(tmp_path / "tiny", seed=3)
    vocab = json.loads((base / "config.json").read_text())["vocab_size"]
    one, two = new_store(), new_store()
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    for store in (one, two):
        insert_scored_calls(store, "digits", start=start, tasks=case.tasks, per_task=4,
                            vocab=vocab)  # fmt: skip
    common = {
        "PYTHONPATH": str(ROOT), "FULMEN_TRAIN_ALGO": case.algo,
        "FULMEN_TRAIN_AGENT_NAME": "digits",
        "FULMEN_TRAIN_TASK": "tests.support.tasks:DigitTask", "FULMEN_TRAIN_BASE_MODEL": str(base),
        "FULMEN_TRAIN_GATE__HELDOUT_TASKS": "4", "FULMEN_TRAIN_GATE__MAX_NEW_TOKENS": "4",
        "FULMEN_TRAIN_GATE__MIN_GAIN": "-1",
    } | case.env  # fmt: skip
    with shared_store(StoreSettings(path=chdb_path)) as served:

        def env(store: LightningStore, name: str) -> dict[str, str]:
            return common | client_env(served) | {
                "FULMEN_STORE__DATABASE": store.settings.database,
                "FULMEN_TRAIN_ARTIFACTS_DIR": str(tmp_path / name / "artifacts"),
                "FULMEN_TRAIN_SNAPSHOTS_DIR": str(tmp_path / name / "windows"),
            }  # fmt: skip

        alone = _train([str(FULMEN), "train"], env(one, "one"), tmp_path)
        torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                    "--nproc-per-node=2", str(FULMEN), "train"]  # fmt: skip
        sharded = _train(torchrun, env(two, "two"), tmp_path)

    assert alone["outcome"] == sharded["outcome"] == "published"
    assert alone["metrics"].keys() == sharded["metrics"].keys()
    for key in case.counts:
        assert alone["metrics"][key] == sharded["metrics"][key], key
    assert sharded["metrics"]["loss"] == pytest.approx(alone["metrics"]["loss"], abs=1e-4)
    # The same version, in the same lineage, but for its id and artifact path.
    columns = "kind, target_agent, parent_version, algorithm, window_id, dataset_hash, metrics"
    [first], [second] = _rows(one, "versions", columns), _rows(two, "versions", columns)
    assert {k: v for k, v in first.items() if k != "metrics"} == {
        k: v for k, v in second.items() if k != "metrics"
    }
    assert dict(first["metrics"]).keys() == dict(second["metrics"]).keys()
    runs = [_rows(s, "training_runs", "outcome, window_id, dataset_hash, episodes")
            for s in (one, two)]  # fmt: skip
    assert runs[0] == runs[1]
    assert len(runs[0]) == 1
    # The same weights: the trained LoRA matrices agree within TOLERANCE, and they moved.
    [a_dir] = (tmp_path / "one" / "artifacts").iterdir()
    [b_dir] = (tmp_path / "two" / "artifacts").iterdir()
    a = load_file(a_dir / "adapter_model.safetensors")
    b = load_file(b_dir / "adapter_model.safetensors")
    assert a.keys() == b.keys()
    assert max((a[k] - b[k]).abs().max().item() for k in a) < TOLERANCE
    assert max(a[k].abs().max().item() for k in a if "lora_B" in k) > 100 * TOLERANCE
    assert all(torch.isfinite(a[k]).all() for k in a)
