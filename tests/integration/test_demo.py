"""`fulmen demo`'s loop in a reduced size, end to end: a tiny model built from a config, a
task it learns in seconds, two windows of six tasks. Each stage's output is checked: the
agent's calls and rewards in the store, the trainer jobs the scheduler started as
subprocesses, the version published and swapped in (the agent's next calls ask for it and
are stamped with it), and the summary, table and plot."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

from rich.console import Console

from fulmen.demo import BASE, DemoSettings, run_demo
from fulmen.models import tiny_model_dir
from fulmen.store import LightningStore


def test_the_demo_loop_trains_swaps_and_reports(
    tmp_path: Path, new_store: Callable[[], LightningStore]
) -> None:
    store = new_store()  # the session's chDB engine: one process holds one
    settings = DemoSettings(
        out_dir=tmp_path / "demo", store=store.settings,
        model=str(tiny_model_dir(tmp_path / "tiny", seed=3)),
        task="tests.support.tasks:DigitTask", algo="rl", versions=2, tasks_per_window=6,
        attempts_per_task=4, temperature=1.0, max_tokens=8, heldout_tasks=12,
        train_env={"FULMEN_TRAIN_RL__LEARNING_RATE": "3e-3", "FULMEN_TRAIN_RL__EPOCHS": "4",
                   "FULMEN_TRAIN_RL__BATCH_SIZE": "16", "FULMEN_TRAIN_GATE__BATCH_SIZE": "12"},
    )  # fmt: skip
    out = io.StringIO()

    result = run_demo(settings, console=Console(file=out, width=120))
    print(out.getvalue())  # shown when an assertion fails

    first, second = result.record.jobs
    assert first.outcome == "published", first.log.read_text()[-2000:]
    assert first.episodes == second.episodes == 24
    assert "heldout_reward" in first.log.read_text()
    summary = json.loads(result.summary.read_text())
    rows = summary["versions"]
    # The first version ran as a canary on half the tasks of the second window.
    [release] = summary["releases"]
    canary, parent = release["arms"]
    assert (release["version"], release["parent"], release["share"]) == (first.version, "", 0.5)
    assert (canary["version_id"], parent["version_id"]) == (first.version, "")
    assert canary["episodes"] + parent["episodes"] == 24
    assert rows[0] == {"version": BASE, "algorithm": None, "episodes": 24 + parent["episodes"],
                       "heldout_reward": first.metrics["heldout_reward_parent"],
                       "release": None}  # fmt: skip
    assert rows[1] == {"version": first.version, "algorithm": "rl",
                       "episodes": canary["episodes"],
                       "heldout_reward": first.metrics["heldout_reward"],
                       "release": release["action"]}  # fmt: skip
    assert rows[1]["heldout_reward"] >= rows[0]["heldout_reward"]
    assert release["action"] in ("promote", "rollback", "hold")
    assert f"{release['action']} canary {first.version}" in out.getvalue()
    assert [j["outcome"] for j in summary["jobs"]] == [first.outcome, second.outcome]
    assert result.plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "held-out reward by version" in out.getvalue()

    db = store.settings.database
    counts = store.sql(
        f"SELECT (SELECT count() FROM {db}.rewards) AS rewards, "
        f"(SELECT count() FROM {db}.triplets) AS calls, "
        f"(SELECT count() FROM {db}.training_runs) AS runs"
    ).to_pylist()
    assert counts == [{"rewards": 48, "calls": 48, "runs": 2}]
    # The decision is in the store, and the second job trained from the version in force.
    decided = store.sql(
        f"SELECT action, version_id, to_version FROM {db}.release_decisions"
    ).to_pylist()
    in_force = {"promote": first.version, "rollback": None, "hold": None}[release["action"]]
    assert decided == [{"action": release["action"], "version_id": first.version,
                        "to_version": in_force}]  # fmt: skip
    parents = store.sql(
        f"SELECT parent_version FROM {db}.training_runs ORDER BY started_at"
    ).to_pylist()
    assert [p["parent_version"] for p in parents] == [None, in_force]
    # The second window's calls were made after the swap: they asked for the new version.
    swapped = store.sql(
        f"SELECT DISTINCT request_model, model_version FROM {db}.triplets WHERE model_version != ''"
    ).to_pylist()
    [published] = store.sql(
        f"SELECT model_name FROM {db}.versions WHERE version_id = {{v:String}}",
        {"v": first.version},
    ).to_pylist()
    assert swapped == [{"request_model": published["model_name"], "model_version": first.version}]


def test_the_demo_runs_a_multi_turn_agent_with_per_step_credit(
    tmp_path: Path, new_store: Callable[[], LightningStore]
) -> None:
    """The lookup agent's loop on a two-turn task: every episode's two calls reach the
    store as triplets credited by `per_call` (the first call's step reward 0, the second's
    the task's reward, which the episode's reward counts twice: as the last step's and as
    the final one), and the job trains on them and gates on whole episodes."""
    store = new_store()
    settings = DemoSettings(
        out_dir=tmp_path / "demo", store=store.settings,
        model=str(tiny_model_dir(tmp_path / "tiny", seed=3)),
        task="tests.support.tasks:TwoTurnDigitTask", agent="examples.openai_lookup",
        agent_name="digits-twice", credit="per_call", algo="rl", versions=1,
        tasks_per_window=6, attempts_per_task=4, temperature=1.0, max_tokens=8,
        heldout_tasks=12, adapt=False,
        train_env={"FULMEN_TRAIN_RL__LEARNING_RATE": "3e-3", "FULMEN_TRAIN_RL__EPOCHS": "4",
                   "FULMEN_TRAIN_RL__BATCH_SIZE": "16", "FULMEN_TRAIN_GATE__BATCH_SIZE": "12"},
    )  # fmt: skip
    out = io.StringIO()

    result = run_demo(settings, console=Console(file=out, width=120))
    print(out.getvalue())

    [job] = result.record.jobs
    assert job.outcome in ("published", "gate_failed"), job.log.read_text()[-2000:]
    assert job.episodes == 24
    db = store.settings.database
    steps = store.sql(
        f"SELECT t.step AS step, 2 * t.reward = e.reward AS is_final, t.reward AS reward "
        f"FROM {db}.triplets AS t JOIN {db}.episodes AS e USING (rollout_id, attempt) "
        "ORDER BY step"
    ).to_pylist()
    assert [s["step"] for s in steps] == [0] * 24 + [1] * 24
    assert all(s["reward"] == 0.0 for s in steps[:24])
    assert all(s["is_final"] for s in steps[24:])
    [credit] = store.sql(f"SELECT DISTINCT credit_assignment AS c FROM {db}.episodes").to_pylist()
    assert credit == {"c": "per_call"}
