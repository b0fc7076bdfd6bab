"""Preference data from a window: the extension point that says which completions are
preferred to which (`PairingRule`), and the data it produces.

A rule turns a window (its scored attempts, the feedback on them) into *pairs* for DPO
(one prompt, a chosen and a rejected completion) and *judged completions* for KTO (one
completion, desirable or not). Its `name` is recorded in the lineage of every version
trained on its data (`VersionEvent.recipe["pairing"]`), as a credit assigner's name is
recorded with each episode. Fulmen's own are `rewards` (`_pairs_rewards.py`) and `thumbs`
(`_pairs_thumbs.py`); `module:attribute` names your own.

Everything is logged token ids: a pair is built where two attempts of one task were
conditioned on the same prompt ids and answered differently (`decision_point`), so the
model is trained on exactly the tokens it was served. Only a correction (text a person
wrote) is tokenized, by `PreferenceInput.encode`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from fulmen._import_path import instance_at
from fulmen.errors import FulmenError
from fulmen.trainers._window import LoggedCall, Window

TokenIds = tuple[int, ...]


class PairingLoadError(FulmenError):
    """A pairing setting that names neither a built-in rule nor a `PairingRule`."""


@dataclass(frozen=True, slots=True)
class PreferenceInput:
    """What a rule reads: the window (its calls and, for a feedback-reading algorithm, the
    feedback on its episodes) and how a correction's text becomes token ids."""

    window: Window
    encode: Callable[[str], TokenIds]
    """A corrected answer's token ids, ending with the end-of-turn token the model writes."""


@dataclass(frozen=True, slots=True)
class PreferencePair:
    """`chosen_ids` is preferred to `rejected_ids` as the answer to `prompt_ids`."""

    task_id: str
    prompt_ids: TokenIds
    chosen_ids: TokenIds
    rejected_ids: TokenIds


@dataclass(frozen=True, slots=True)
class JudgedCompletion:
    """One completion of `prompt_ids`, judged desirable or not (KTO's unpaired data)."""

    task_id: str
    prompt_ids: TokenIds
    completion_ids: TokenIds
    desirable: bool


class PairingRule(ABC):
    """Builds preference data from a window; must be deterministic (a retried job trains on
    the same data)."""

    name: str
    """Recorded in the lineage of the versions trained on this rule's data."""

    @abstractmethod
    def pairs(self, data: PreferenceInput) -> list[PreferencePair]:
        """Pairs for DPO, each once."""

    def judged(self, data: PreferenceInput) -> list[JudgedCompletion]:
        """Judged completions for KTO: by default each pair's chosen completion as desirable
        and its rejected one as undesirable, each (prompt, completion, label) once."""
        judged = [
            JudgedCompletion(pair.task_id, pair.prompt_ids, ids, desirable)
            for pair in self.pairs(data)
            for ids, desirable in ((pair.chosen_ids, True), (pair.rejected_ids, False))
        ]
        return list(dict.fromkeys(judged))


def decision_point(
    preferred: Sequence[LoggedCall], other: Sequence[LoggedCall]
) -> tuple[TokenIds, TokenIds, TokenIds] | None:
    """Where two episodes of one task parted: the first step at which both calls had the same
    prompt ids but answered differently, as (prompt, preferred's answer, other's answer).
    None when their prompts differ before their answers do (a tool or the world answered
    them differently: no single decision to prefer) or they never differ."""
    for mine, theirs in zip(preferred, other, strict=False):
        if mine.prompt_ids != theirs.prompt_ids:
            return None
        if mine.response_ids != theirs.response_ids:
            return mine.prompt_ids, mine.response_ids, theirs.response_ids
    return None


def load_pairing_rule(name: str) -> PairingRule:
    """`rewards` or `thumbs` (Fulmen's own, with their defaults), or `module:attribute`: a
    `PairingRule` instance, or a class or factory that returns one without arguments."""
    from fulmen.trainers._pairs_rewards import RewardPairs
    from fulmen.trainers._pairs_thumbs import ThumbPairs

    builtin: dict[str, Callable[[], PairingRule]] = {"rewards": RewardPairs, "thumbs": ThumbPairs}
    if name in builtin:
        return builtin[name]()
    try:
        return instance_at(name, PairingRule)  # type: ignore[type-abstract]  # only isinstance-checked
    except (ValueError, ImportError, TypeError) as exc:
        raise PairingLoadError(
            f"pairing {name!r} is neither one of {', '.join(builtin)} nor a PairingRule: {exc}"
        ) from exc
