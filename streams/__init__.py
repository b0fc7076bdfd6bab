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
)
from fulmen.streams._credit import (
    CreditAssigner,
    DiscountedReturn,
    EpisodeRewards,
    FinalReward,
    PerCallReward,
    split_rewards,
)
from fulmen.streams._embedded import EmbeddedRunner, RunnerStats

__all__ = [
    "AssemblyPolicy",
    "CreditAssigner",
    "DiscountedReturn",
    "EmbeddedRunner",
    "Episode",
    "EpisodeAssembler",
    "EpisodeRewards",
    "EpisodeRow",
    "FinalReward",
    "PerCallReward",
    "RolloutBuffer",
    "RunnerStats",
    "TripletRow",
    "add",
    "assemble",
    "episodes_table",
    "is_due",
    "is_expired",
    "split_rewards",
    "triplets_table",
]
