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
`train_wall_s` counts sampling and training alike. The window is built in process
(bench/_learn_window.py).

`--task lookup` runs the multi-turn lookup task (fulmen.tasks.lookup: 2 to 4 LLM calls an
episode) and compares credit assignment on the same episodes: `rl` (every call gets the
episode's final reward), `rl-discounted` (discounted return of the step rewards, gamma 0.9),
`rl-steps` (each call its own step reward) and `sft`, with held-out reward and LLM calls
per episode before and after; `--seeds 0,1,2` repeats arms with other seeds (initial
adapter, tasks, samples, batch order). Its figures go under `lookup` in learn.json, by arm
and seed, with each arm's mean and standard deviation over its seeds. Measured with
BENCH_LEARN_MAX_ROUNDS=3 BENCH_LEARN_MINUTES=20: every arm sees the same number of
episodes, and the wall time each took is recorded.

The agent samples at temperature 0.5: measured on the base model (32 tasks x 4 attempts),
T=1.0 solves 0.8% of attempts (1 task of 32 has any success), T=0.7 9%, T=0.5 16% (14
tasks, 13 groups with mixed rewards) — the signal every algorithm learns from.

`--algos dpo,kto` (or `--arms`) runs only those (default: rl,sft,dpo,kto for the calculator,
rl,rl-discounted,rl-steps,sft for the lookup task); their figures are merged into
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
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import torch
from peft import PeftModel
from rich.console import Console
from transformers import PreTrainedTokenizerBase

from bench._learn_window import sampled_window
from bench._results import ROOT, write_result
from fulmen.models import base_model_dir
from fulmen.models._precision import cpu_has_bf16
from fulmen.streams import CreditAssigner, DiscountedReturn, FinalReward, PerCallReward
from fulmen.tasks import AgentTask, CalculatorTask, LookupTask
from fulmen.trainers import (
    GateSettings,
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
    run_episodes,
    train_dpo,
    train_kto,
    train_rl,
    train_sft,
)
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
FLIPPED = 0.1
"""The share of simulated thumbs that say the opposite of the reward (noisy users)."""
DEFAULTS = TrainSettings()
"""DPO and KTO train with the hyper-parameters a job has by default."""
TASKS_BY_NAME: dict[str, Callable[[], AgentTask]] = {
    "calculator": CalculatorTask,
    "lookup": LookupTask,
}
Train = Callable[[PeftModel, PreTrainedTokenizerBase, Window, int], None]
"""One round's training on its window, in place; the int is the run's seed."""


@dataclass(frozen=True, slots=True)
class Arm:
    """What one benchmarked variant trains with, and how episodes' rewards are credited
    to the calls it trains on."""

    train: Train
    credit: CreditAssigner


@dataclass(frozen=True, slots=True)
class Evaluation:
    reward: float
    calls_per_episode: float


def _evaluate(model: PeftModel, tokenizer: PreTrainedTokenizerBase, task: AgentTask) -> Evaluation:
    """Greedy episodes of the held-out cases: the gate's score, and how many LLM calls an
    episode took."""
    model.eval()
    episodes = run_episodes(
        model, tokenizer, task, task.heldout(HELDOUT), max_new_tokens=GATE.max_new_tokens,
        batch_size=GATE.batch_size,
    )  # fmt: skip
    calls = sum(len(e.replies) for e in episodes) / len(episodes)
    return Evaluation(sum(e.reward for e in episodes) / len(episodes), calls)


def _continual(task: AgentTask, name: str, arm: Arm, seed: int) -> dict[str, float]:
    torch.manual_seed(seed)
    model, tokenizer = trainable_policy(base_model_dir(), None, lora=LoraSettings())
    load_at_start = os.getloadavg()[0]
    start, round_, episodes, sampled, longest = time.perf_counter(), 0, 0, 0.0, 0.0
    while time.perf_counter() - start + longest <= MINUTES * 60:  # a round must fit the budget
        if MAX_ROUNDS and round_ >= MAX_ROUNDS:
            break
        round_start = time.perf_counter()
        round_seed = seed * 1000 + round_
        window, runs = sampled_window(
            model, tokenizer, task, task.training(TASKS, seed=round_seed), attempts=ATTEMPTS,
            temperature=TEMPERATURE, seed=round_seed, version=f"{name}-{round_}",
            credit=arm.credit,
        )  # fmt: skip
        episodes += len(runs)
        sampled = sum(r.reward for r in runs) / len(runs)
        arm.train(model, tokenizer, window, seed)
        round_ += 1
        elapsed = time.perf_counter() - start
        longest = max(longest, time.perf_counter() - round_start)
        calls = len(window.calls) / len(runs)
        console.print(
            f"{name} seed {seed} round {round_}: sampled reward {sampled:.2f}, "
            f"{calls:.2f} calls an episode, {elapsed:.0f} s"
        )
    wall = time.perf_counter() - start
    after = _evaluate(model, tokenizer, task)
    console.print(
        f"{name} seed {seed}: held-out reward {after.reward:.3f} "
        f"({after.calls_per_episode:.2f} calls an episode) after {round_} rounds, {wall:.0f} s"
    )
    return {"heldout": after.reward, "calls_per_episode": after.calls_per_episode,
            "wall_s": wall, "episodes": float(episodes), "rounds": float(round_),
            "last_sampled_reward": sampled, "load_average_at_start": load_at_start}  # fmt: skip


def _rl(model: PeftModel, tokenizer: PreTrainedTokenizerBase, window: Window, seed: int) -> None:
    version = window.calls[0].model_version
    data = rl_samples(window, parent=version, parents={version: None}, max_staleness=0)
    if data.samples:
        settings = RlSettings(learning_rate=2e-4, batch_size=16, epochs=2, seed=seed)
        train_rl(model, data, settings=settings)


def _sft(model: PeftModel, tokenizer: PreTrainedTokenizerBase, window: Window, seed: int) -> None:
    calls = [c for episode in best_episodes(window, min_reward=1.0) for c in episode]
    if calls:
        settings = SftSettings(learning_rate=2e-4, epochs=2, seed=seed)
        train_sft(model, tokenizer, calls, settings=settings)


def _dpo(model: PeftModel, tokenizer: PreTrainedTokenizerBase, window: Window, seed: int) -> None:
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


def _kto(model: PeftModel, tokenizer: PreTrainedTokenizerBase, window: Window, seed: int) -> None:
    round_seed = int(window.window_id.rpartition("-")[2])
    rated = replace(window, feedback=simulated_thumbs(window, seed=round_seed))
    judged = ThumbPairs().judged(PreferenceInput(rated, correction_ids(tokenizer)))
    if len({j.desirable for j in judged}) == 2:
        train_kto(model, tokenizer, judged, settings=DEFAULTS.kto)


FINAL = FinalReward()
ARMS: dict[str, Arm] = {
    "rl": Arm(_rl, FINAL),
    "sft": Arm(_sft, FINAL),
    "dpo": Arm(_dpo, FINAL),
    "kto": Arm(_kto, FINAL),
    "rl-discounted": Arm(_rl, DiscountedReturn(gamma=0.9)),
    "rl-steps": Arm(_rl, PerCallReward()),
}
"""`rl` credits every call with the episode's final reward (the broadcast); `rl-discounted`
and `rl-steps` use the task's step rewards too (`AgentTask.step_rewards`)."""
DEFAULT_ARMS = {"calculator": "rl,sft,dpo,kto", "lookup": "rl,rl-discounted,rl-steps,sft"}


def _read_metrics() -> dict[str, Any]:
    path = ROOT / "bench" / "results" / "learn.json"
    return json.loads(path.read_text())["metrics"] if path.exists() else {}  # type: ignore[no-any-return]


def _calculator_metrics(
    figures: dict[str, dict[str, float]], common: dict[str, object]
) -> dict[str, Any]:
    """learn.json with this run's algorithms' figures replacing their old ones, the other
    algorithms' kept (the calculator's flat layout, one seed)."""
    metrics = _read_metrics() | common
    for name, run in figures.items():
        metrics[f"heldout_reward_after_{name}"] = run["heldout"]
        by_name = {"train_wall_s": run["wall_s"], "episodes": run["episodes"],
                   "rounds": run["rounds"]}  # fmt: skip
        for key, value in by_name.items():
            metrics.setdefault(key, {})[name] = value
        metrics[f"{name}_train_wall_s"] = run["wall_s"]
    return metrics


def _task_metrics(
    task: str, runs: dict[str, dict[int, dict[str, float]]], common: dict[str, object]
) -> dict[str, Any]:
    """learn.json with `task`'s section (under its name) updated: each arm's runs by seed,
    replacing earlier runs of the same arm and seed, and each arm's mean over its seeds."""
    metrics = _read_metrics()
    section: dict[str, Any] = metrics.setdefault(task, {}) | common
    before = float(section["heldout_reward_before"])
    for name, by_seed in runs.items():
        arm = section.setdefault("arms", {}).setdefault(name, {"runs": {}})
        arm["credit"] = ARMS[name].credit.name if name.startswith("rl") else "final"
        arm["runs"] |= {str(seed): figures for seed, figures in by_seed.items()}
        heldout = [run["heldout"] for run in arm["runs"].values()]
        arm["heldout_mean"] = statistics.fmean(heldout)
        arm["heldout_stdev"] = statistics.stdev(heldout) if len(heldout) > 1 else None
        arm["gain_mean"] = arm["heldout_mean"] - before
        arm["seeds"] = len(heldout)
    metrics[task] = section
    return metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--task", default="calculator", choices=sorted(TASKS_BY_NAME))
    parser.add_argument(
        "--algos", "--arms", dest="arms", help=f"e.g. dpo,kto; of {', '.join(ARMS)}"
    )
    parser.add_argument("--seeds", default="0", help="comma-separated, e.g. 0,1,2")
    args = parser.parse_args()
    arms = (args.arms or DEFAULT_ARMS[args.task]).split(",")
    unknown = set(arms) - set(ARMS)
    if unknown:
        parser.error(f"unknown arms {sorted(unknown)}; choose from {', '.join(ARMS)}")
    seeds = [int(seed) for seed in args.seeds.split(",")]
    if args.task == "calculator" and seeds != [0]:
        parser.error("the calculator's figures are one seed's; --seeds is for other tasks")
    if THREADS:
        torch.set_num_threads(THREADS)
    load_at_start = os.getloadavg()[0]
    task = TASKS_BY_NAME[args.task]()
    torch.manual_seed(0)
    base, tokenizer = trainable_policy(base_model_dir(), None, lora=LoraSettings())
    before = _evaluate(base, tokenizer, task)
    console.print(
        f"base model: held-out reward {before.reward:.3f} "
        f"({before.calls_per_episode:.2f} calls an episode)"
    )
    del base
    runs = {
        name: {seed: _continual(task, name, ARMS[name], seed) for seed in seeds} for name in arms
    }
    common: dict[str, object] = {
        "heldout_tasks": HELDOUT,
        "heldout_reward_before": before.reward,
        "budget_minutes": MINUTES,
        "tasks_per_round": TASKS,
        "attempts_per_task": ATTEMPTS,
        "temperature": TEMPERATURE,
        "torch_threads": torch.get_num_threads(),
        "load_average_at_start": load_at_start,
        "cpu_bf16": cpu_has_bf16(),
    }
    if args.task == "calculator":
        figures = {name: by_seed[0] for name, by_seed in runs.items()}
        common |= {
            "kto_flipped_thumbs": FLIPPED,
            "target": "each of RL, SFT, DPO and KTO raises held-out reward by >= 0.3 within 10 min",
        }
        metrics = _calculator_metrics(figures, common)
    else:
        common |= {
            "calls_per_episode_before": before.calls_per_episode,
            "target": "the best RL credit raises held-out reward by >= 0.3 within 20 min",
        }
        metrics = _task_metrics(args.task, runs, common)
    write_result("learn", metrics, console=console)


if __name__ == "__main__":
    main()
