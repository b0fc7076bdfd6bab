"""`fulmen train` under torchrun: 2 processes (gloo, CPU) train the same RL window as one
process and publish the same version. One store engine, served over HTTP (as the scheduler
serves it to local jobs), holds two databases with the same episodes: one per run, so each
run starts from the base and both publish a first version.

Tolerance: the LoRA weights of the two artifacts agree to 1e-4 (absolute). fp32 compute
(`FULMEN_TRAIN_RL__PRECISION=fp32`), the same seeded fresh adapter; the runs differ in
summation order only (two ranks' gradients reduce-scattered vs one process's micro-batches;
1 vs 2 OpenMP threads).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
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


def _train(command: list[str], env: dict[str, str], tmp: Path) -> dict[str, Any]:
    done = subprocess.run(
        command, env=os.environ | env, cwd=ROOT, capture_output=True, text=True, timeout=240,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1, done.stdout  # rank 0 alone reports
    result: dict[str, Any] = json.loads(lines[0])
    return result


def _rows(store: LightningStore, table: str, columns: str) -> list[dict[str, Any]]:
    db = store.settings.database
    rows: list[dict[str, Any]] = store.sql(f"SELECT {columns} FROM {db}.{table}").to_pylist()
    return rows


def test_two_processes_train_the_same_version_as_one(
    new_store: Callable[[], LightningStore], chdb_path: Path, tmp_path: Path
) -> None:
    base = tiny_model_dir(tmp_path / "tiny", seed=3)
    vocab = json.loads((base / "config.json").read_text())["vocab_size"]
    one, two = new_store(), new_store()
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    for store in (one, two):
        insert_scored_calls(store, "digits", start=start, tasks=6, per_task=4, vocab=vocab)
    common = {
        "PYTHONPATH": str(ROOT), "FULMEN_TRAIN_ALGO": "rl", "FULMEN_TRAIN_AGENT_NAME": "digits",
        "FULMEN_TRAIN_TASK": "tests.support.tasks:DigitTask", "FULMEN_TRAIN_BASE_MODEL": str(base),
        "FULMEN_TRAIN_GATE__HELDOUT_TASKS": "4", "FULMEN_TRAIN_GATE__MAX_NEW_TOKENS": "4",
        "FULMEN_TRAIN_GATE__MIN_GAIN": "-1", "FULMEN_TRAIN_RL__PRECISION": "fp32",
        "FULMEN_TRAIN_RL__LEARNING_RATE": "3e-3", "FULMEN_TRAIN_RL__BATCH_SIZE": "12",
        "FULMEN_TRAIN_RL__EPOCHS": "2",
    }  # fmt: skip
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
    for key in ("samples", "steps", "tokens", "dropped_stale"):
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
