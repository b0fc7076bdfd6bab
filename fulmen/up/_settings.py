"""What `fulmen up` starts: `FULMEN_UP_*` environment variables (or arguments)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _tuned_train_env() -> dict[str, str]:
    # The demo's: what lifts SmolLM2 on the calculator task within a few windows.
    return {
        "FULMEN_TRAIN_RL__LEARNING_RATE": "2e-4",
        "FULMEN_TRAIN_RL__BATCH_SIZE": "16",
        "FULMEN_TRAIN_RL__EPOCHS": "2",
        "FULMEN_TRAIN_SFT__LEARNING_RATE": "2e-4",
        "FULMEN_TRAIN_SFT__EPOCHS": "2",
    }


class UpSettings(BaseSettings):
    """The local stack's sizes, ports and parts. Every other `FULMEN_*` setting in the
    environment (the worker's `FULMEN_WORKER_*`, the scheduler's `FULMEN_SCHEDULER_*`, the
    jobs' `FULMEN_TRAIN_*`, the topic prefix, the store's database) reaches the services
    as it is, except those the stack itself decides (addresses, directories, and the
    settings named by the fields below)."""

    model_config = SettingsConfigDict(env_prefix="FULMEN_UP_", extra="ignore")

    dir: Path = Path(".fulmen/up")
    """Everything the stack writes: `logs/<service>.log`, `kafka/`, `store/`, `worker/`,
    `jobs/`, `artifacts/`, `windows/`, `spill/`, and `state.json` while it is up. Kept
    between runs (the broker's topics and the store go on where they stopped)."""
    kafka_port: int = Field(default=9092, ge=0, le=65535)
    """The broker's client port on 127.0.0.1; 0 picks a free port (as do the ports below)."""
    store_port: int = Field(default=8123, ge=0, le=65535)
    """`fulmen store serve`: ClickHouse's HTTP protocol."""
    worker_port: int = Field(default=6066, ge=0, le=65535)
    """The stream worker's metrics (`/metrics`)."""
    policy_port: int = Field(default=8000, ge=0, le=65535)
    """The policy server's OpenAI-compatible API (`/v1`)."""
    partitions: int = Field(default=4, ge=1)
    """Partitions of the span, reward, rollout and episode topics (the worker's too)."""
    model: str = "smollm2"
    """The base model: `smollm2` (SmolLM2-135M-Instruct, built once) or a Hugging Face model
    directory; the policy server serves it and the trainer jobs start from it."""
    agent: str = "examples.openai_calculator"
    """The agent's module: `python -m <agent> --base-url URL --task T --rollouts N
    --temperature X --max-tokens M --seed S` runs its loop; its `DEFAULT_MODEL` is the
    name the policy server gives the base model."""
    agent_name: str = "calculator"
    """The agents' name in their events: the scheduler trains this agent."""
    agents: int = Field(default=1, ge=1)
    """Agent processes."""
    rollouts: int = Field(default=0, ge=0)
    """Rollouts each agent runs before it ends; 0: until the stack stops."""
    task: str = "fulmen.tasks:CalculatorTask"
    """`module:attribute` of the `AgentTask`: the agents' cases and reward, the gate's
    held-out set."""
    temperature: float = Field(default=0.5, ge=0)
    max_tokens: int = Field(default=40, ge=1)
    algo: str = "rl"
    """`rl`, `sft`, `apo` or `module:Class` (as `fulmen train --algo`)."""
    window_episodes: int = Field(default=128, ge=1)
    """A trainer job starts when this many new episodes are in the store."""
    heldout_tasks: int = Field(default=50, ge=1)
    """Held-out cases the gate scores each candidate on."""
    train_env: dict[str, str] = Field(default_factory=_tuned_train_env)
    """`FULMEN_TRAIN_*` defaults of the trainer jobs; the same variables set in the
    environment win."""
    canary_share: float = Field(default=0.5, gt=0.0, le=1.0)
    """The share of the agents' rollouts each new version starts on; the release controller
    (`fulmen rollout`) then promotes it or rolls it back. 1.0: every rollout at once."""
    release_env: dict[str, str] = Field(
        default_factory=lambda: {
            "FULMEN_RELEASE__MIN_EPISODES": "30",
            "FULMEN_RELEASE__INTERVAL_S": "10",
        }
    )
    """`FULMEN_RELEASE__*` defaults of the release controller (a local stack's traffic is
    small); the same variables set in the environment win."""
    ready_timeout_s: float = Field(default=300.0, gt=0)
    """How long a service may take to become ready (the policy server loads the model)."""
    stop_timeout_s: float = Field(default=30.0, gt=0)
    """How long a service may take to stop after SIGTERM before it is killed."""
