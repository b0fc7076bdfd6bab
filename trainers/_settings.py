"""What a trainer job reads at start-up: `fulmen train` options, or `FULMEN_TRAIN_*`
environment variables (nested with `__`) in a Kubernetes Job."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from fulmen.trainers._apo import ApoSettings
from fulmen.trainers._gate import GateSettings
from fulmen.trainers._policy import LoraSettings
from fulmen.trainers._preference_trl import PreferenceSettings
from fulmen.trainers._rl import RlSettings
from fulmen.trainers._sft import SftSettings


class TrainSettings(BaseSettings):
    """One trainer job: which window, which parent, which algorithm, where results go."""

    model_config = SettingsConfigDict(
        env_prefix="FULMEN_TRAIN_", env_nested_delimiter="__", extra="ignore"
    )

    algo: str = "sft"
    """`rl`, `sft`, `dpo`, `kto`, `apo`, or `module:Class` of a custom
    `fulmen.trainers.Algorithm`."""
    agent_name: str | None = None
    """Train the version of this agent (the version targets it); None trains for all."""
    task: str = "fulmen.tasks:CalculatorTask"
    """`module:attribute` of the `AgentTask` whose held-out cases gate the candidate."""
    base_model: str = "smollm2"
    """A Hugging Face model directory, or `smollm2` for the packaged SmolLM2-135M-Instruct."""
    parent: str | None = None
    """The version to improve; default: the one in force for `agent_name`."""
    window_id: str | None = None
    """Given by the scheduler; default: the snapshot's content hash."""
    since: datetime | None = None
    until: datetime | None = None
    min_group_size: int = Field(default=1, ge=1)
    artifacts_dir: Path = Path(".fulmen/artifacts")
    snapshots_dir: Path = Path(".fulmen/windows")
    result_file: Path | None = None
    """Where to write the job's result as JSON (the local scheduler reads it)."""
    canary_share: float = Field(default=1.0, gt=0.0, le=1.0)
    """The share of the agent's rollouts a published version starts on: 1.0 switches every
    rollout at once; below, it is a canary that the release controller (`fulmen rollout`)
    promotes or rolls back from production rewards (docs/versions.md)."""
    relay_version: bool = False
    """On the embedded default: leave the published version to whoever reads the result
    file (`fulmen demo` puts it on the agents' in-process control topic, and the stream
    runner stores it from there) instead of writing it to the store."""
    seed: int = 0
    collective_timeout_seconds: int = Field(default=2 * 3600, ge=1)
    """Under torchrun (several processes): how long a rank waits in a collective, e.g. for
    rank 0 to finish the gate before it hands out the result."""
    gate: GateSettings = Field(default_factory=GateSettings)
    lora: LoraSettings = Field(default_factory=LoraSettings)
    rl: RlSettings = Field(default_factory=RlSettings)
    sft: SftSettings = Field(default_factory=SftSettings)
    apo: ApoSettings = Field(default_factory=ApoSettings)
    dpo: PreferenceSettings = Field(default_factory=lambda: PreferenceSettings(sft_weight=1.0))
    """DPO's hyper-parameters; an SFT term on the chosen answers by default (docs/trainers.md)."""
    kto: PreferenceSettings = Field(default_factory=lambda: PreferenceSettings(epochs=1))
    """KTO's hyper-parameters: one pass (every attempt is an example), in batches of 8 that
    each hold both labels in about the window's proportion (docs/trainers.md)."""
    pairing: str | None = None
    """DPO and KTO: the `PairingRule` that builds their preference data (`rewards`, `thumbs`,
    or `module:attribute`); None: `rewards` for DPO, `thumbs` for KTO."""
    sft_min_reward: float = 1.0
    """Rejection sampling: a task's best episode is kept only from this reward up."""
