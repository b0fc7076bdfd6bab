"""`rewards`: pairs from attempts of the same task that scored differently."""

from __future__ import annotations

from collections import defaultdict

from fulmen.trainers._pairing import PairingRule, PreferenceInput, PreferencePair, decision_point
from fulmen.trainers._window import ScoredEpisode


class RewardPairs(PairingRule):
    """Every two scored attempts of a task whose rewards differ by at least `min_gap`: the
    higher-scored one is chosen, at the step where the two parted (`decision_point`).
    A task with n attempts gives at most n·(n-1)/2 pairs; unscored attempts give none."""

    def __init__(self, *, min_gap: float = 0.5) -> None:
        if min_gap <= 0:
            raise ValueError(f"min_gap must be positive, got {min_gap}")
        self.min_gap = min_gap
        self.name = f"rewards(min_gap={min_gap:g})"

    def pairs(self, data: PreferenceInput) -> list[PreferencePair]:
        by_task: dict[str, list[ScoredEpisode]] = defaultdict(list)
        for episode in data.window.scored_episodes():
            by_task[episode.calls[0].task_id].append(episode)
        pairs: dict[PreferencePair, None] = {}
        for task_id, episodes in sorted(by_task.items()):
            for better in episodes:
                for worse in episodes:
                    if better.reward - worse.reward < self.min_gap:
                        continue
                    parted = decision_point(better.calls, worse.calls)
                    if parted is not None:
                        pairs[PreferencePair(task_id, *parted)] = None
        return list(pairs)
