"""A training window: the immutable snapshot of logged LLM calls a job trains on.

The store exports the window once as a content-addressed Parquet file; the job reads only
that file, so a retry of the same job trains on exactly the same data and the version it
publishes names the window's hash.

A window holds scored episodes only, unless the algorithm asked for unscored ones too
(`Algorithm.include_unscored`): then their calls' `reward` is None. `scored_episodes()` is
the way to rank episodes by reward, whatever the window holds.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from itertools import pairwise
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from fulmen.store import LightningStore, Snapshot, WindowQuery


@dataclass(frozen=True, slots=True)
class LoggedCall:
    """One LLM call of a finished episode, with the reward credited to it (None: the episode
    is unscored, which a window holds only when asked to)."""

    rollout_id: str
    attempt: int
    step: int
    task_id: str
    model_version: str
    prompt_ids: tuple[int, ...]
    response_ids: tuple[int, ...]
    logprobs: tuple[float, ...]
    reward: float | None
    prompt: str
    """The call's input messages as logged (JSON text)."""
    response: str
    """The completion's text."""
    span_id: str = ""
    """The call's span id (what feedback on this call names)."""

    @property
    def episode(self) -> tuple[str, int]:
        return (self.rollout_id, self.attempt)


@dataclass(frozen=True, slots=True)
class LoggedFeedback:
    """Feedback on an episode of a window (`fulmen.emit_feedback`), in emit order."""

    rollout_id: str
    attempt: int
    thumbs_up: bool
    source: str
    span_id: str | None
    """The rated call; None rates the episode's answer, its last call."""
    correction: str | None
    comment: str | None

    @property
    def episode(self) -> tuple[str, int]:
        return (self.rollout_id, self.attempt)


@dataclass(frozen=True, slots=True)
class ScoredEpisode:
    """A scored episode of a window: its calls in step order and its reward, the highest
    credit of its calls (the episode's reward under the default `final` credit)."""

    key: tuple[str, int]
    """(rollout id, attempt)."""
    reward: float
    calls: tuple[LoggedCall, ...]


@dataclass(frozen=True, slots=True)
class Window:
    """The calls of a window, in (task, rollout, attempt, step) order, and its snapshot."""

    window_id: str
    snapshot: Snapshot
    calls: tuple[LoggedCall, ...]
    feedback: tuple[LoggedFeedback, ...] = ()
    """Feedback on the window's episodes, when the algorithm asked for it
    (`Algorithm.uses_feedback`), else empty."""
    feedback_snapshot: Snapshot | None = None
    """The immutable file the feedback was read from (None: not asked for)."""

    @property
    def episodes(self) -> int:
        return len({call.episode for call in self.calls})

    def by_episode(self) -> dict[tuple[str, int], list[LoggedCall]]:
        """Every episode's calls, unscored ones included when the window holds any."""
        grouped: dict[tuple[str, int], list[LoggedCall]] = defaultdict(list)
        for call in self.calls:
            grouped[call.episode].append(call)
        return dict(grouped)

    def scored_episodes(self) -> list[ScoredEpisode]:
        """The scored episodes, in (rollout id, attempt) order; unscored ones are left out
        (their reward is unknown, not 0)."""
        scored = []
        for key, calls in sorted(self.by_episode().items()):
            rewards = [call.reward for call in calls if call.reward is not None]
            if rewards:
                scored.append(ScoredEpisode(key, max(rewards), tuple(calls)))
        return scored


def read_window(
    store: LightningStore,
    query: WindowQuery,
    directory: Path,
    *,
    window_id: str | None = None,
    feedback: bool = False,
) -> Window:
    """Export `query`'s window under `directory` and read it back from the snapshot file;
    with `feedback`, also the feedback on its episodes (a snapshot file of its own).
    `window_id` defaults to the snapshot's content hash."""
    window = load_window(store.export_window(query, directory), window_id=window_id)
    if not feedback:
        return window
    episodes = sorted({call.episode for call in window.calls})
    return with_feedback(window, store.export_feedback(episodes, directory))


def with_feedback(window: Window, snapshot: Snapshot) -> Window:
    """`window` with the feedback of an exported feedback snapshot."""
    rows = pq.read_table(snapshot.path).to_pylist()
    feedback = tuple(
        LoggedFeedback(
            rollout_id=row["rollout_id"], attempt=row["attempt"], thumbs_up=row["thumbs_up"],
            source=row["source"], span_id=row["span_id"], correction=row["correction"],
            comment=row["comment"],
        )
        for row in rows
    )  # fmt: skip
    return replace(window, feedback=feedback, feedback_snapshot=snapshot)


def load_window(snapshot: Snapshot, *, window_id: str | None = None) -> Window:
    """Read an exported snapshot (its file never changes once written), column by column:
    no row is turned into a dict on the way."""
    table = pq.read_table(snapshot.path)
    calls = tuple(
        LoggedCall(
            rollout_id=rollout_id, attempt=attempt, step=step, task_id=task_id,
            model_version=model_version, prompt_ids=prompt_ids, response_ids=response_ids,
            logprobs=logprobs, reward=reward, prompt=prompt, response=response, span_id=span_id,
        )
        for (
            rollout_id, attempt, step, task_id, model_version, prompt_ids, response_ids,
            logprobs, reward, prompt, response, span_id,
        ) in zip(
            *(table.column(name).to_pylist() for name in (
                "rollout_id", "attempt", "step", "task_id", "model_version")),
            _tuples(table.column("prompt_token_ids")),
            _tuples(table.column("response_token_ids")),
            _tuples(table.column("response_logprobs")),
            *(table.column(name).to_pylist() for name in (
                "reward", "prompt", "response", "span_id")),
            strict=True,
        )
    )  # fmt: skip
    return Window(window_id=window_id or snapshot.sha256[:16], snapshot=snapshot, calls=calls)


def _tuples(column: pa.ChunkedArray) -> Iterator[tuple[Any, ...]]:
    """The lists of a non-null list column as tuples, from its flat values and offsets."""
    for chunk in column.chunks:
        values = chunk.values.to_numpy(zero_copy_only=False).tolist()
        for start, end in pairwise(chunk.offsets.to_numpy().tolist()):
            yield tuple(values[start:end])


def best_episodes(window: Window, *, min_reward: float) -> list[Sequence[LoggedCall]]:
    """Rejection sampling: per task, the calls of its highest-reward episode, if that
    reward reaches `min_reward` (ties go to the earliest rollout id, deterministically).
    Unscored episodes are never chosen."""
    best: dict[str, ScoredEpisode] = {}
    for episode in window.scored_episodes():
        task = episode.calls[0].task_id
        if episode.reward >= min_reward and (
            task not in best or episode.reward > best[task].reward
        ):
            best[task] = episode
    return [list(episode.calls) for episode in best.values()]
