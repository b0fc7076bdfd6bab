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
from fulmen.streams._intake import (
    DEAD_LETTER_VALUE_MAX,
    DeadLetter,
    Intake,
    Received,
    decode_batch,
    topic_kinds,
)
from fulmen.streams._settings import WorkerSettings
from fulmen.streams._sink import StoreSink
from fulmen.streams._state import RolloutState
from fulmen.streams._topics import TopicMismatch, prepare_topics
from fulmen.streams._worker import StreamWorker

__all__ = [
    "DEAD_LETTER_VALUE_MAX",
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
    "TopicMismatch",
    "TripletRow",
    "WorkerSettings",
    "add",
    "assemble",
    "decode_batch",
    "episodes_table",
    "is_due",
    "is_expired",
    "load_credit_assigner",
    "prepare_topics",
    "reconcile",
    "split_rewards",
    "topic_kinds",
    "triplets_table",
]
