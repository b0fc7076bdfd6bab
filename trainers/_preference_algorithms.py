"""`dpo` and `kto`: model versions trained on preference data that a `PairingRule` builds
from the window — attempts of a task that scored differently, and feedback (thumbs up or
down, corrections). Both read the window's feedback and its unscored episodes too (feedback
needs no reward); the rule decides what is used. The rule's name goes into the version's
lineage (`VersionEvent.recipe["pairing"]`)."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable
from typing import ClassVar, Generic, TypeVar

from peft import PeftModel
from rich.progress import Progress
from transformers import PreTrainedTokenizerBase

from fulmen.trainers._algorithm import EmptyWindow, JobContext
from fulmen.trainers._model_algorithms import ModelAlgorithm
from fulmen.trainers._pairing import (
    JudgedCompletion,
    PairingRule,
    PreferenceInput,
    PreferencePair,
    TokenIds,
    load_pairing_rule,
)
from fulmen.trainers._preference_trl import PreferenceStats, train_dpo, train_kto

Example = TypeVar("Example", PreferencePair, JudgedCompletion)


def correction_ids(tokenizer: PreTrainedTokenizerBase) -> Callable[[str], TokenIds]:
    """How a correction becomes token ids: its text tokenized as a completion (no special
    tokens), then the end-of-turn token the model ends its answers with."""

    def encode(text: str) -> TokenIds:
        ids = [int(i) for i in tokenizer(text, add_special_tokens=False)["input_ids"]]
        end = tokenizer.eos_token_id
        return tuple(ids if end is None else [*ids, int(end)])

    return encode


class _Preference(ModelAlgorithm, Generic[Example]):
    include_unscored = True
    uses_feedback = True
    default_pairing: ClassVar[str]

    def __init__(self, job: JobContext) -> None:
        super().__init__(job)
        self.rule: PairingRule = load_pairing_rule(job.settings.pairing or self.default_pairing)

    @abstractmethod
    def examples(self, data: PreferenceInput) -> list[Example]:
        """What the rule gives this algorithm to train on."""

    @abstractmethod
    def train(
        self,
        model: PeftModel,
        tokenizer: PreTrainedTokenizerBase,
        examples: list[Example],
        on_step: Callable[[int, int], None],
    ) -> PreferenceStats: ...

    def recipe(self) -> dict[str, str]:
        recipe = {"pairing": self.rule.name}
        snapshot = self.job.window.feedback_snapshot
        if snapshot is not None:
            recipe["feedback_hash"] = snapshot.sha256
        return recipe

    def train_policy(
        self, model: PeftModel, tokenizer: PreTrainedTokenizerBase, progress: Progress
    ) -> dict[str, float]:
        examples = self.examples(PreferenceInput(self.job.window, correction_ids(tokenizer)))
        if not examples:
            raise EmptyWindow(f"no {self.family} training data in the window ({self.rule.name})")
        bar = progress.add_task(f"training ({self.family})", total=None)
        stats = self.train(
            model, tokenizer, examples, lambda i, n: progress.update(bar, completed=i, total=n)
        )
        return {"examples": float(stats.examples), "steps": float(stats.steps)} | {
            "loss": stats.final_loss
        }


class Dpo(_Preference[PreferencePair]):
    """DPO (TRL's DPOTrainer, sigmoid loss, LoRA, the parent as the reference) on the pairs
    of the pairing rule, `rewards` by default."""

    family = "dpo"
    default_pairing = "rewards"

    def examples(self, data: PreferenceInput) -> list[PreferencePair]:
        return self.rule.pairs(data)

    def train(
        self,
        model: PeftModel,
        tokenizer: PreTrainedTokenizerBase,
        examples: list[PreferencePair],
        on_step: Callable[[int, int], None],
    ) -> PreferenceStats:
        settings = self.job.settings.dpo
        return train_dpo(model, tokenizer, examples, settings=settings, on_step=on_step)


class Kto(_Preference[JudgedCompletion]):
    """KTO (TRL's KTOTrainer, LoRA, the parent as the reference) on the judged completions
    of the pairing rule, `thumbs` by default: every rated answer with its thumb, and every
    correction as a desirable answer."""

    family = "kto"
    default_pairing = "thumbs"

    def examples(self, data: PreferenceInput) -> list[JudgedCompletion]:
        return self.rule.judged(data)

    def train(
        self,
        model: PeftModel,
        tokenizer: PreTrainedTokenizerBase,
        examples: list[JudgedCompletion],
        on_step: Callable[[int, int], None],
    ) -> PreferenceStats:
        settings = self.job.settings.kto
        return train_kto(model, tokenizer, examples, settings=settings, on_step=on_step)
