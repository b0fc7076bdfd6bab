"""The extension point of training: an `Algorithm` turns a job's window into a gated
candidate version.

Fulmen's own are `rl` and `sft` (model versions: a LoRA adapter, `_model_algorithms.py`),
`dpo` and `kto` (model versions from preference data, `_preference_algorithms.py`) and `apo`
(prompt versions, `_apo_algorithm.py`). Any other is a subclass named by import
path, `fulmen train --algo mypackage.algorithms:MyAlgorithm`: the job constructs it with the
`JobContext`, asks `parent_version()`, then `train_and_gate()`, and publishes what
`GatedCandidate.version` builds only when the gate passed.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from fulmen.errors import FulmenError
from fulmen.schemas import Algorithm as VersionAlgorithm
from fulmen.schemas import VersionEvent
from fulmen.store import LightningStore
from fulmen.trainers._distributed import SINGLE, Ranks
from fulmen.trainers._gate import GateDecision
from fulmen.trainers._window import Window

if TYPE_CHECKING:
    from rich.console import Console

    from fulmen.trainers._settings import TrainSettings


class EmptyWindow(FulmenError):
    """The window holds nothing this algorithm can train on (recorded as a failed run)."""


@dataclass(frozen=True, slots=True)
class JobContext:
    """What a job hands its algorithm."""

    settings: TrainSettings
    store: LightningStore
    window: Window
    candidate: str
    """The version id the candidate is published under if it passes the gate."""
    console: Console
    ranks: Ranks = SINGLE
    """This process's place in the job; rank 0 alone gates and builds the version."""


@dataclass(frozen=True, slots=True)
class GatedCandidate:
    """A trained candidate and the gate's verdict on it."""

    metrics: dict[str, float]
    decision: GateDecision
    version: Callable[[], VersionEvent]
    """Builds the version to publish (saving artifacts); called only when the gate passed."""


class Algorithm(ABC):
    """One way of improving an agent from a window of its episodes. Constructed once per
    job; may read the store (lineage, the version in force) in `__init__`."""

    family: ClassVar[VersionAlgorithm]
    """The `algorithm` its version events carry (the event schema's closed set: a custom
    algorithm names the family it belongs to; `training_runs` keeps its full name)."""

    include_unscored: ClassVar[bool] = False
    """Whether `job.window` also holds unscored episodes (no reward of the primary name
    reached them), whose calls' `reward` is None. Off for every built-in algorithm: each
    learns from rewards, and a missing reward is not a zero — but `dpo` and `kto`, whose
    feedback needs no reward."""

    uses_feedback: ClassVar[bool] = False
    """Whether `job.window.feedback` holds the feedback on the window's episodes (read from
    a snapshot of its own, `Window.feedback_snapshot`)."""

    distributed: ClassVar[bool] = False
    """Whether every process of a multi-process job runs `train_and_gate` (it trains
    sharded, calling collectives; rank 0's candidate is the one gated and published). Off:
    rank 0 alone runs it while the other processes wait for its result."""

    def __init__(self, job: JobContext) -> None:
        self.job = job

    @abstractmethod
    def parent_version(self) -> str | None:
        """The version this job improves; None is the base (nothing published yet)."""

    @abstractmethod
    def train_and_gate(self) -> GatedCandidate:
        """Train a candidate on `job.window` and gate it against the parent on held-out
        tasks. Raises `EmptyWindow` when the window holds nothing to train on."""
