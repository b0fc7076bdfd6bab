"""`rewards`: pairs from attempts of the same task that scored differently."""

from __future__ import annotations

from collections import defaultdict

from fulmen.trainers._pairing import PairingRule, PreferenceInput, PreferencePair, decision_point
from fulmen.trainers._window import ScoredEpisode


class RewardPairs(PairingRule):
    """Every two scored attempts of a task whose rewards differ by at least `min_gap`: the
    higher-scored one is chosen, at the step where the two parted (`decision_point`).
    A task with n attempts has up to n·(n-1)/2 such pairs; at most `max_per_task` of them
    are kept, the widest reward gaps first (ties in attempt order), so that a task sampled
    many times does not outweigh the window. Unscored attempts give none."""

    def __init__(self, *, min_gap: float = 0.5, max_per_task: int = 16) -> None:
        if min_gap <= 0:
            raise ValueError(f"min_gap must be positive, got {min_gap}")
        if max_per_task < 1:
            raise ValueError(f"max_per_task must be at least 1, got {max_per_task}")
        self.min_gap = min_gap
        self.max_per_task = max_per_task
        self.name = f"rewards(min_gap={min_gap:g}, max_per_task={max_per_task})"

    def pairs(self, data: PreferenceInput) -> list[PreferencePair]:
        by_task: dict[str, list[ScoredEpisode]] = defaultdict(list)
        for episode in data.window.scored_episodes():
            by_task[episode.calls[0].task_id].append(episode)
        pairs: list[PreferencePair] = []
        for task_id, episodes in sorted(by_task.items()):
            gaps: dict[PreferencePair, float] = {}
            for better in episodes:
                for worse in episodes:
                    gap = better.reward - worse.reward
                    if gap < self.min_gap:
                        continue
                    parted = decision_point(better.calls, worse.calls)
                    if parted is not None:
                        gaps.setdefault(PreferencePair(task_id, *parted), gap)
            widest = sorted(gaps, key=lambda pair: -gaps[pair])  # stable: attempt order
            pairs.extend(widest[: self.max_per_task])  # unique: `gaps` keys, one task each
        return pairs
