"""`make bench-learn`: does training make the agent better? SmolLM2-135M-Instruct on the
calculator tool-call task (fulmen.tasks.calculator), held-out reward with greedy decoding
before training, after continual RL, SFT, DPO and KTO, each from the base model.

Each algorithm runs rounds of the continual loop within a wall-clock budget: the current
policy answers a batch of training tasks (sampled at the agent's temperature, several
attempts per task, with the raw logprobs an agent would log — vLLM's default), the round's
window trains the next version (RL: GRPO-style advantages + TIS on the logged logprobs;
SFT: the best attempt per task, TRL's SFTTrainer; DPO: pairs of attempts of a task that
scored differently (the `rewards` pairing rule), TRL's DPOTrainer with an SFT term on the
chosen answers (RPO); KTO: simulated thumbs — each attempt's reward turned
into up (reward >= 0.5) or down, 10% of them flipped (seeded), as noisy users would rate —
TRL's KTOTrainer), and the next round samples from it.
`train_wall_s` counts sampling and training alike.
The data path (agent → store → window) is exercised by the tests; here the window is built
in process so that the figure measures learning, not plumbing.

The agent samples at temperature 0.5: measured on the base model (32 tasks x 4 attempts),
T=1.0 solves 0.8% of attempts (1 task of 32 has any success), T=0.7 9%, T=0.5 16% (14
tasks, 13 groups with mixed rewards) — the signal every algorithm learns from.

`--algos dpo,kto` runs only those (default: rl,sft,dpo,kto); their figures are merged into
bench/results/learn.json, keeping the other algorithms' from an earlier run. Sizes:
BENCH_LEARN_MINUTES (per algorithm, default 10), BENCH_LEARN_HELDOUT (default 100),
BENCH_LEARN_TASKS (tasks per round, 32), BENCH_LEARN_ATTEMPTS (attempts per task, 4),
BENCH_LEARN_TEMPERATURE (0.5), BENCH_LEARN_THREADS (torch threads; default torch's own),
BENCH_LEARN_MAX_ROUNDS (stop after this many rounds even within the budget; default none:
to see whether further rounds stay stable, with a longer budget).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch
from peft import PeftModel
from rich.console import Console
from transformers import PreTrainedTokenizerBase

from bench._results import ROOT, write_result
from fulmen.models import base_model_dir
from fulmen.models._precision import cpu_has_bf16
from fulmen.store import Snapshot
from fulmen.tasks import CalculatorTask
from fulmen.trainers import (
    GateSettings,
    LoggedCall,
    LoggedFeedback,
    LoraSettings,
    PreferenceInput,
    RewardPairs,
    RlSettings,
    SftSettings,
    ThumbPairs,
    TrainSettings,
    Window,
    best_episodes,
    rl_samples,
    train_dpo,
    train_kto,
    train_rl,
    train_sft,
)
from fulmen.trainers._gate import heldout_reward
from fulmen.trainers._generate import generate
from fulmen.trainers._policy import trainable_policy
from fulmen.trainers._preference_algorithms import correction_ids

console = Console()
MINUTES = float(os.environ.get("BENCH_LEARN_MINUTES", "10"))
HELDOUT = int(os.environ.get("BENCH_LEARN_HELDOUT", "100"))
TASKS = int(os.environ.get("BENCH_LEARN_TASKS", "32"))
ATTEMPTS = int(os.environ.get("BENCH_LEARN_ATTEMPTS", "4"))
TEMPERATURE = float(os.environ.get("BENCH_LEARN_TEMPERATURE", "0.5"))
THREADS = int(os.environ.get("BENCH_LEARN_THREADS", "0"))
MAX_ROUNDS = int(os.environ.get("BENCH_LEARN_MAX_ROUNDS", "0"))
GATE = GateSettings(heldout_tasks=HELDOUT, max_new_tokens=40, batch_size=50)
TASK = CalculatorTask()
FLIPPED = 0.1
"""The share of simulated thumbs that say the opposite of the reward (noisy users)."""
DEFAULTS = TrainSettings()
"""DPO and KTO train with the hyper-parameters a job has by default."""


def _window(
    model: PeftModel, tokenizer: PreTrainedTokenizerBase, round_: int, version: str
) -> Window:
    """One round of agent traffic from the current policy, as a trainer window."""
    cases = TASK.training(TASKS, seed=round_)
    repeated = [c for c in cases for _ in range(ATTEMPTS)]
    model.eval()
    completions = generate(
        model, tokenizer, [c.messages for c in repeated], max_new_tokens=40,
        temperature=TEMPERATURE, batch_size=64, seed=round_,
    )  # fmt: skip
    calls = tuple(
        LoggedCall(
            rollout_id=f"r{round_}-{i}", attempt=1, step=0, task_id=case.task_id,
            model_version=version, prompt_ids=g.prompt_ids, response_ids=g.response_ids,
            logprobs=g.logprobs, reward=TASK.reward(case.task_id, g.text),
            prompt=json.dumps(case.messages), response=g.text,
        )
        for i, (case, g) in enumerate(zip(repeated, completions, strict=True))
    )  # fmt: skip
    return Window(f"round-{round_}", Snapshot(Path("-"), f"round-{round_}", len(calls)), calls)


def _continual(
    name: str, train: Callable[[PeftModel, PreTrainedTokenizerBase, Window], None]
) -> dict[str, float]:
    model, tokenizer = trainable_policy(base_model_dir(), None, lora=LoraSettings())
    start, round_, episodes, sampled, longest = time.perf_counter(), 0, 0, 0.0, 0.0
    while time.perf_counter() - start + longest <= MINUTES * 60:  # a round must fit the budget
        if round_ == MAX_ROUNDS:
            break
        round_start = time.perf_counter()
        window = _window(model, tokenizer, round_, version=f"{name}-{round_}")
        episodes += window.episodes
        sampled_reward = sum(c.reward for c in window.calls) / len(window.calls)
        train(model, tokenizer, window)
        round_ += 1
        elapsed = time.perf_counter() - start
        longest = max(longest, time.perf_counter() - round_start)
        console.print(
            f"{name} round {round_}: sampled reward {sampled_reward:.2f}, {elapsed:.0f} s"
        )
        sampled = sampled_reward
    wall = time.perf_counter() - start
    after = heldout_reward(model, tokenizer, TASK, TASK.heldout(HELDOUT), settings=GATE)
    console.print(f"{name}: held-out reward {after:.3f} after {round_} rounds, {wall:.0f} s")
    return {"heldout": after, "wall_s": wall, "episodes": float(episodes), "rounds": float(round_),
            "last_sampled_reward": sampled}  # fmt: skip


def _rl(model: PeftModel, tokenizer: PreTrainedTokenizerBase, window: Window) -> None:
    version = window.calls[0].model_version
    data = rl_samples(window, parent=version, parents={version: None}, max_staleness=0)
    if data.samples:
        settings = RlSettings(learning_rate=2e-4, batch_size=16, epochs=2)
        train_rl(model, data, settings=settings)


def _sft(model: PeftModel, tokenizer: PreTrainedTokenizerBase, window: Window) -> None:
    calls = [c for episode in best_episodes(window, min_reward=1.0) for c in episode]
    if calls:
        train_sft(model, tokenizer, calls, settings=SftSettings(learning_rate=2e-4, epochs=2))


def _dpo(model: PeftModel, tokenizer: PreTrainedTokenizerBase, window: Window) -> None:
    pairs = RewardPairs().pairs(PreferenceInput(window, correction_ids(tokenizer)))
    if pairs:
        train_dpo(model, tokenizer, pairs, settings=DEFAULTS.dpo)


def simulated_thumbs(window: Window, *, seed: int) -> tuple[LoggedFeedback, ...]:
    """Every attempt rated as a user would: up when its reward is at least 0.5, the
    opposite for a seeded `FLIPPED` share of them."""
    rng = random.Random(seed)
    return tuple(
        LoggedFeedback(
            rollout_id=c.rollout_id, attempt=c.attempt,
            thumbs_up=((c.reward or 0.0) >= 0.5) != (rng.random() < FLIPPED),
            source="human", span_id=None, correction=None, comment=None,
        )
        for c in window.calls
    )  # fmt: skip


def _kto(model: PeftModel, tokenizer: PreTrainedTokenizerBase, window: Window) -> None:
    seed = int(window.window_id.rpartition("-")[2])
    rated = replace(window, feedback=simulated_thumbs(window, seed=seed))
    judged = ThumbPairs().judged(PreferenceInput(rated, correction_ids(tokenizer)))
    if len({j.desirable for j in judged}) == 2:
        train_kto(model, tokenizer, judged, settings=DEFAULTS.kto)


ALGORITHMS: dict[str, Callable[[PeftModel, PreTrainedTokenizerBase, Window], None]] = {
    "rl": _rl,
    "sft": _sft,
    "dpo": _dpo,
    "kto": _kto,
}


def _merged(figures: dict[str, dict[str, float]], common: dict[str, object]) -> dict[str, object]:
    """The metrics of learn.json with this run's algorithms' figures replacing their old
    ones, the other algorithms' kept."""
    path = ROOT / "bench" / "results" / "learn.json"
    metrics: dict[str, object] = json.loads(path.read_text())["metrics"] if path.exists() else {}
    metrics |= common
    for name, run in figures.items():
        metrics[f"heldout_reward_after_{name}"] = run["heldout"]
        by_name = {"train_wall_s": run["wall_s"], "episodes": run["episodes"],
                   "rounds": run["rounds"]}  # fmt: skip
        for key, value in by_name.items():
            table = metrics.setdefault(key, {})
            assert isinstance(table, dict)
            table[name] = value
        metrics[f"{name}_train_wall_s"] = run["wall_s"]
    return metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--algos", default=",".join(ALGORITHMS), help="e.g. dpo,kto")
    algos = parser.parse_args().algos.split(",")
    unknown = set(algos) - set(ALGORITHMS)
    if unknown:
        parser.error(f"unknown algorithms {sorted(unknown)}; choose from {', '.join(ALGORITHMS)}")
    if THREADS:
        torch.set_num_threads(THREADS)
    load_at_start = os.getloadavg()[0]
    torch.manual_seed(0)
    base, tokenizer = trainable_policy(base_model_dir(), None, lora=LoraSettings())
    before = heldout_reward(base, tokenizer, TASK, TASK.heldout(HELDOUT), settings=GATE)
    console.print(f"base model: held-out reward {before:.3f}")
    del base
    figures = {name: _continual(name, ALGORITHMS[name]) for name in algos}
    common = {
        "heldout_tasks": HELDOUT,
        "heldout_reward_before": before,
        "budget_minutes": MINUTES,
        "tasks_per_round": TASKS,
        "attempts_per_task": ATTEMPTS,
        "temperature": TEMPERATURE,
        "torch_threads": torch.get_num_threads(),
        "load_average_at_start": load_at_start,
        "cpu_bf16": cpu_has_bf16(),
        "kto_flipped_thumbs": FLIPPED,
        "target": "each of RL, SFT, DPO and KTO raises held-out reward by >= 0.3 within 10 min",
    }
    write_result("learn", _merged(figures, common), console=console)


if __name__ == "__main__":
    main()
