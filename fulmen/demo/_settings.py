"""What one run of `fulmen demo` does: the agent's traffic, when a window is full, how many
versions, and how the trainer jobs train."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

from fulmen.store import StoreSettings

TASK_PRESETS: dict[str, tuple[str, str, str]] = {
    "calculator": ("fulmen.tasks:CalculatorTask", "examples.openai_calculator", "calculator"),
    "lookup": ("fulmen.tasks:LookupTask", "examples.openai_lookup", "lookup"),
}
"""The demo's tasks by name: the `AgentTask`, the agent module that runs it, the agent name."""


def task_settings(task: str) -> dict[str, str]:
    """The `DemoSettings` fields for `task`: a preset's (`calculator`, `lookup`) task, agent
    and agent name, or a `module:attribute` path run by the default agent. Raises
    ValueError for anything else."""
    if task in TASK_PRESETS:
        path, agent, agent_name = TASK_PRESETS[task]
        return {"task": path, "agent": agent, "agent_name": agent_name}
    if ":" not in task:
        raise ValueError(f"task {task!r} is neither {', '.join(TASK_PRESETS)} nor module:attribute")
    return {"task": task}


class DemoSettings(BaseModel):
    """The demo loop's sizes. The defaults run SmolLM2-135M-Instruct on the calculator task
    through three rejection-sampling SFT jobs (the quickest learner on 2 CPU cores: one job
    took held-out reward from 0.12 to 0.48); `algo="rl"` runs the same loop with RL."""

    out_dir: Path = Path(".fulmen/demo")
    """The store, the job logs, the artifacts, `summary.json` and `reward.png` go here."""
    store: StoreSettings | None = None
    """The embedded store to fill; None: chDB under `out_dir/store` (cleared first). One
    process holds one chDB engine, so a process that has one already passes its path."""
    model: str = "smollm2"
    """`smollm2` (packaged SmolLM2-135M-Instruct) or a Hugging Face model directory."""
    task: str = "fulmen.tasks:CalculatorTask"
    """`module:attribute` of the `AgentTask`: the agent's cases and reward, and the gate's
    held-out set."""
    agent: str = "examples.openai_calculator"
    """The agent's module: `solve(client, task, case, *, temperature, max_tokens, seed)`
    runs one rollout; `DEFAULT_MODEL` names the base model it asks for."""
    agent_name: str = "calculator"
    credit: str = "final"
    """The stream runner's credit assigner: `final`, `discounted`, `per_call` or
    `module:attribute` (docs/trainers.md#credit-on-a-multi-turn-task)."""
    algo: str = "sft"
    """`rl`, `sft`, `apo` or `module:Class` (as `fulmen train --algo`)."""
    versions: int = Field(default=3, ge=1)
    """Trainer jobs to run (each publishes a version or is held back by the gate)."""
    tasks_per_window: int = Field(default=24, ge=1)
    attempts_per_task: int = Field(default=4, ge=1)
    """Each task is tried this often: RL learns from the spread of rewards within a task."""
    temperature: float = Field(default=0.5, ge=0)
    max_tokens: int = Field(default=40, ge=1)
    heldout_tasks: int = Field(default=50, ge=1)
    """Held-out cases the gate scores each version on (greedy decoding)."""
    budget_minutes: float = Field(default=13.0, gt=0)
    """The whole run's time. No round (a window of traffic, then its job) starts that would
    not fit: judged by the measured pace with `adapt`, else by the longest round so far."""
    adapt: bool = True
    """Time the first rollouts and size each window (at most `tasks_per_window` tasks) and
    the held-out set (at most `heldout_tasks`) so that at least two rounds fit the budget on
    this machine (`_plan.py`); False runs the sizes as given."""
    canary_share: float = Field(default=0.5, gt=0.0, le=1.0)
    """The share of the agent's rollouts (by task) each new version starts on; after the next
    window the release rule promotes or rolls it back. 1.0: every rollout at once."""
    canary_alpha: float = Field(default=0.05, gt=0.0, lt=1.0)
    """The release rule's false-alarm rate (docs/versions.md)."""
    train_env: dict[str, str] = Field(
        default_factory=lambda: {
            "FULMEN_TRAIN_RL__LEARNING_RATE": "2e-4",
            "FULMEN_TRAIN_RL__BATCH_SIZE": "16",
            "FULMEN_TRAIN_RL__EPOCHS": "2",
            "FULMEN_TRAIN_SFT__LEARNING_RATE": "2e-4",
            "FULMEN_TRAIN_SFT__EPOCHS": "2",
        }
    )
    """More `FULMEN_TRAIN_*` settings for the trainer jobs (docs/trainers.md)."""

    @property
    def window_episodes(self) -> int:
        """A trainer job starts when this many new episodes are in the store."""
        return self.tasks_per_window * self.attempts_per_task
