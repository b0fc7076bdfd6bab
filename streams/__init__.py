"""The stream side: spans, rewards and rollout events joined into scored episodes for the
LightningStore. The assembly and credit assignment here are plain logic, shared by the
stream worker and the embedded runner."""

from fulmen.streams._assembler import EpisodeAssembler, episodes_table, triplets_table
from fulmen.streams._assembly import (
    AssemblyPolicy,
    Episode,
    EpisodeRow,
    RolloutBuffer,
    TripletRow,
    add,
    assemble,
    is_due,
    is_expired,
    reconcile,
)
from fulmen.streams._credit import (
    CreditAssigner,
    DiscountedReturn,
    EpisodeRewards,
    FinalReward,
    PerCallReward,
    split_rewards,
)
from fulmen.streams._credit_loading import CreditLoadError, load_credit_assigner
from fulmen.streams._embedded import EmbeddedRunner, RunnerStats
from fulmen.streams._intake import DeadLetter, Intake, Received, decode_batch
from fulmen.streams._settings import WorkerSettings
from fulmen.streams._sink import StoreSink
from fulmen.streams._worker import RolloutState, StreamWorker

__all__ = [
    "AssemblyPolicy",
    "CreditAssigner",
    "CreditLoadError",
    "DeadLetter",
    "DiscountedReturn",
    "EmbeddedRunner",
    "Episode",
    "EpisodeAssembler",
    "EpisodeRewards",
    "EpisodeRow",
    "FinalReward",
    "Intake",
    "PerCallReward",
    "Received",
    "RolloutBuffer",
    "RolloutState",
    "RunnerStats",
    "StoreSink",
    "StreamWorker",
    "TripletRow",
    "WorkerSettings",
    "add",
    "assemble",
    "decode_batch",
    "episodes_table",
    "is_due",
    "is_expired",
    "load_credit_assigner",
    "reconcile",
    "split_rewards",
    "triplets_table",
]
