"""The training side: a job reads a window of scored episodes from the LightningStore as an
immutable snapshot, improves the policy (RL on logged episodes, rejection-sampling SFT),
gates the candidate against its parent on held-out tasks, and publishes it as a version on
the control topic only if it passes.

    result = run_job(TrainSettings(algo="rl"), store=store, publish=publish_version)

`dpo` and `kto` train on preference data that a `PairingRule` builds from the window (attempts
that scored differently, thumbs and corrections from `fulmen.emit_feedback`).

An algorithm is an `Algorithm` subclass (`ModelAlgorithm` for LoRA-trained model versions:
write `train_policy`); `algo="mypackage.module:MyAlgorithm"` runs one of your own.
"""

from fulmen.tasks._task import AgentTask, TaskCase, TaskLoadError, load_task
from fulmen.trainers._algorithm import Algorithm, EmptyWindow, GatedCandidate, JobContext
from fulmen.trainers._algorithms import AlgorithmLoadError, load_algorithm
from fulmen.trainers._apo import (
    ApoResult,
    ApoSettings,
    Candidate,
    clean_edit,
    optimize_prompt,
    score_template,
    select_beam,
)
from fulmen.trainers._apo_algorithm import Apo
from fulmen.trainers._chat import ChatEndpoint, EndpointError
from fulmen.trainers._distributed import Ranks, process_group, rank_share
from fulmen.trainers._episodes import EpisodeRun, run_episodes
from fulmen.trainers._fsdp import gather_trained, shard_policy
from fulmen.trainers._gate import GateDecision, GateSettings, decide
from fulmen.trainers._job import JobResult, run_job, write_result
from fulmen.trainers._lineage import Lineage, PromptVersion, PublishedVersion, prompt_in_force
from fulmen.trainers._logprobs import ResponseLogprobs, response_logprobs
from fulmen.trainers._model_algorithms import ModelAlgorithm, Rl, Sft
from fulmen.trainers._pairing import (
    JudgedCompletion,
    PairingLoadError,
    PairingRule,
    PreferenceInput,
    PreferencePair,
    decision_point,
    load_pairing_rule,
)
from fulmen.trainers._pairs_rewards import RewardPairs
from fulmen.trainers._pairs_thumbs import ThumbPairs
from fulmen.trainers._policy import LoraSettings
from fulmen.trainers._preference_algorithms import Dpo, Kto
from fulmen.trainers._preference_trl import (
    PreferenceSettings,
    PreferenceStats,
    train_dpo,
    train_kto,
)
from fulmen.trainers._record import Outcome, TrainingRun
from fulmen.trainers._rl import RlData, RlSettings, rl_samples, train_rl
from fulmen.trainers._rl_loss import (
    group_advantages,
    policy_loss,
    truncated_importance_weights,
    version_staleness,
)
from fulmen.trainers._rl_step import RLStepConfig, StepStats, rl_step
from fulmen.trainers._samples import Sample
from fulmen.trainers._settings import TrainSettings
from fulmen.trainers._sft import SftSettings, train_sft
from fulmen.trainers._window import (
    LoggedCall,
    LoggedFeedback,
    ScoredEpisode,
    Window,
    best_episodes,
    load_window,
    read_window,
)

__all__ = [
    "AgentTask",
    "Algorithm",
    "AlgorithmLoadError",
    "Apo",
    "ApoResult",
    "ApoSettings",
    "Candidate",
    "ChatEndpoint",
    "Dpo",
    "EmptyWindow",
    "EndpointError",
    "EpisodeRun",
    "GateDecision",
    "GateSettings",
    "GatedCandidate",
    "JobContext",
    "JobResult",
    "JudgedCompletion",
    "Kto",
    "Lineage",
    "LoggedCall",
    "LoggedFeedback",
    "LoraSettings",
    "ModelAlgorithm",
    "Outcome",
    "PairingLoadError",
    "PairingRule",
    "PreferenceInput",
    "PreferencePair",
    "PreferenceSettings",
    "PreferenceStats",
    "PromptVersion",
    "PublishedVersion",
    "RLStepConfig",
    "Ranks",
    "ResponseLogprobs",
    "RewardPairs",
    "Rl",
    "RlData",
    "RlSettings",
    "Sample",
    "ScoredEpisode",
    "Sft",
    "SftSettings",
    "StepStats",
    "TaskCase",
    "TaskLoadError",
    "ThumbPairs",
    "TrainSettings",
    "TrainingRun",
    "Window",
    "best_episodes",
    "clean_edit",
    "decide",
    "decision_point",
    "gather_trained",
    "group_advantages",
    "load_algorithm",
    "load_pairing_rule",
    "load_task",
    "load_window",
    "optimize_prompt",
    "policy_loss",
    "process_group",
    "prompt_in_force",
    "rank_share",
    "read_window",
    "response_logprobs",
    "rl_samples",
    "rl_step",
    "run_episodes",
    "run_job",
    "score_template",
    "select_beam",
    "shard_policy",
    "train_dpo",
    "train_kto",
    "train_rl",
    "train_sft",
    "truncated_importance_weights",
    "version_staleness",
    "write_result",
]
