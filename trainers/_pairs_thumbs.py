"""`thumbs`: preference data from feedback (`fulmen.emit_feedback`)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from fulmen.trainers._pairing import (
    JudgedCompletion,
    PairingRule,
    PreferenceInput,
    PreferencePair,
    decision_point,
)
from fulmen.trainers._window import LoggedCall


@dataclass(frozen=True, slots=True)
class _Rated:
    """An episode's rated call (its last feedback wins) and the calls up to it."""

    task_id: str
    calls: tuple[LoggedCall, ...]
    thumbs_up: bool
    correction: str | None

    @property
    def call(self) -> LoggedCall:
        return self.calls[-1]


class ThumbPairs(PairingRule):
    """Pairs: a thumbs-down answer against its correction when one was given, else against
    each thumbs-up attempt of the same task (where the two parted). Judged completions (KTO):
    every rated answer with its thumb, and every correction as desirable.

    Feedback rates the call its `span_id` names, or the episode's last call (its answer);
    when an answer was rated more than once, the last feedback counts. Feedback naming a
    call the window lacks is left out."""

    name = "thumbs"

    def pairs(self, data: PreferenceInput) -> list[PreferencePair]:
        rated = _rated(data)
        ups: dict[str, list[_Rated]] = defaultdict(list)
        for item in rated:
            if item.thumbs_up:
                ups[item.task_id].append(item)
        pairs: dict[PreferencePair, None] = {}
        for item in rated:
            if item.thumbs_up:
                continue
            if item.correction is not None:
                fixed = data.encode(item.correction)
                pair = PreferencePair(
                    item.task_id, item.call.prompt_ids, fixed, item.call.response_ids
                )
                pairs[pair] = None
                continue
            for up in ups[item.task_id]:
                parted = decision_point(up.calls, item.calls)
                if parted is not None:
                    pairs[PreferencePair(item.task_id, *parted)] = None
        return list(pairs)

    def judged(self, data: PreferenceInput) -> list[JudgedCompletion]:
        judged: dict[JudgedCompletion, None] = {}
        for item in _rated(data):
            call = item.call
            answer = JudgedCompletion(
                item.task_id, call.prompt_ids, call.response_ids, item.thumbs_up
            )
            judged[answer] = None
            if item.correction is not None:
                fixed = data.encode(item.correction)
                judged[JudgedCompletion(item.task_id, call.prompt_ids, fixed, True)] = None
        return list(judged)


def _rated(data: PreferenceInput) -> list[_Rated]:
    """The rated calls of the window's episodes, in (rollout, attempt, step) order."""
    episodes = data.window.by_episode()
    latest: dict[tuple[tuple[str, int], str | None], _Rated] = {}
    for feedback in data.window.feedback:
        calls = sorted(episodes.get(feedback.episode, []), key=lambda call: call.step)
        if feedback.span_id is not None:
            steps = [i for i, call in enumerate(calls) if call.span_id == feedback.span_id]
            calls = calls[: steps[0] + 1] if steps else []
        if not calls or not calls[-1].response_ids:
            continue
        key = (feedback.episode, calls[-1].span_id or str(calls[-1].step))
        latest[key] = _Rated(
            calls[0].task_id, tuple(calls), feedback.thumbs_up, feedback.correction
        )
    return [latest[key] for key in sorted(latest)]
