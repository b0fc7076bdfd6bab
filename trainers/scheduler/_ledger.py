"""What the scheduler reads from and writes to the LightningStore: the episodes it counts,
its log of windows (`training_windows`), and failed jobs (`training_runs`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import pyarrow as pa

from fulmen.store import TABLES, LightningStore
from fulmen.trainers._record import TrainingRun, record_run
from fulmen.trainers.scheduler._policy import EpisodePoint, PlannedWindow, Target

WindowState = Literal["started", "succeeded", "failed"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _from_micros(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


@dataclass(frozen=True, slots=True)
class Frontier:
    """Where a target's next window starts, and the mean reward of the window before it."""

    until: datetime
    mean_reward: float


@dataclass(frozen=True, slots=True)
class OpenWindow:
    """A window whose job started and whose end was not recorded."""

    window: PlannedWindow
    started_at: datetime


class WindowLedger:
    """The scheduler's durable state, in the store: nothing is kept in the process."""

    def __init__(self, store: LightningStore) -> None:
        self._store = store
        self._db = store.settings.database

    def agents(self) -> list[str]:
        """Every agent with episodes in the store."""
        table = self._store.sql(f"SELECT DISTINCT agent_name FROM {self._db}.episodes")
        return sorted(str(name) for name in table.column("agent_name").to_pylist())

    def episodes(
        self, agent: str, *, since: datetime | None, horizon: datetime, limit: int
    ) -> list[EpisodePoint]:
        """The agent's scored episodes (latest revision each) that finished in
        `[since, horizon)`, in `finished_at` order, at most `limit`. Unscored ones are left
        out, as trainer windows leave them out: they count towards no window and weigh on
        no mean reward (their reward is unknown, not 0). A late reward that scores one
        brings it in, while its window is not cut yet."""
        table = self._store.sql(
            "SELECT toUnixTimestamp64Micro(argMax(finished_at, revision)) AS at, "
            "argMax(reward, revision) AS last_reward "
            f"FROM {self._db}.episodes "
            "WHERE agent_name = {agent:String} AND finished_at >= {since:DateTime64(6, 'UTC')} "
            "AND finished_at < {horizon:DateTime64(6, 'UTC')} "
            "GROUP BY rollout_id, attempt HAVING argMax(scored, revision) "
            "ORDER BY at, rollout_id, attempt LIMIT {limit:UInt64}",
            {"agent": agent, "since": since or _EPOCH, "horizon": horizon, "limit": limit},
        )
        return [
            EpisodePoint(_from_micros(row["at"]), float(row["last_reward"]))
            for row in table.to_pylist()
        ]

    def frontiers(self) -> dict[Target, Frontier]:
        """The end of each target's last started window."""
        table = self._store.sql(
            "SELECT agent_name, algorithm, toUnixTimestamp64Micro(max(until)) AS last_until, "
            "argMax(mean_reward, until) AS last_mean "
            f"FROM {self._db}.training_windows WHERE state = 'started' "
            "GROUP BY agent_name, algorithm"
        )
        return {
            Target(row["agent_name"], row["algorithm"]): Frontier(
                _from_micros(row["last_until"]), float(row["last_mean"])
            )
            for row in table.to_pylist()
        }

    def states(self, window_ids: list[str]) -> dict[str, set[WindowState]]:
        """The states recorded for each of `window_ids` (absent: none)."""
        if not window_ids:
            return {}
        table = self._store.sql(
            f"SELECT window_id, groupUniqArray(state) AS w_states FROM {self._db}.training_windows "
            "WHERE window_id IN {ids:Array(String)} GROUP BY window_id",
            {"ids": window_ids},
        )
        return {row["window_id"]: set(row["w_states"]) for row in table.to_pylist()}

    def open_windows(self) -> list[OpenWindow]:
        """Windows recorded as started and never as ended."""
        table = self._store.sql(
            "SELECT window_id, any(agent_name) AS w_agent, any(algorithm) AS w_algo, "
            "toUnixTimestamp64Micro(any(since)) AS w_since, "
            "toUnixTimestamp64Micro(any(until)) AS w_until, any(episodes) AS w_episodes, "
            "any(mean_reward) AS w_mean, any(trigger) AS w_trigger, "
            "toUnixTimestamp64Milli(min(recorded_at)) AS w_started "
            f"FROM {self._db}.training_windows GROUP BY window_id "
            "HAVING countIf(state != 'started') = 0"
        )
        return [
            OpenWindow(
                PlannedWindow(
                    target=Target(row["w_agent"], row["w_algo"]),
                    since=None if row["w_since"] is None else _from_micros(row["w_since"]),
                    until=_from_micros(row["w_until"]),
                    episodes=int(row["w_episodes"]),
                    mean_reward=float(row["w_mean"]),
                    trigger=row["w_trigger"],
                ),
                _EPOCH + timedelta(milliseconds=row["w_started"]),
            )
            for row in table.to_pylist()
        ]

    def record(
        self, window: PlannedWindow, state: WindowState, *, reason: str | None = None
    ) -> None:
        """Log that the window's job started or ended (once per state: replays are dropped)."""
        row = {
            "window_id": window.window_id,
            "agent_name": window.target.agent,
            "algorithm": window.target.algo,
            "since": window.since,
            "until": window.until,
            "episodes": window.episodes,
            "mean_reward": window.mean_reward,
            "trigger": window.trigger,
            "job_name": window.job_name,
            "state": state,
            "reason": reason,
            "recorded_at": datetime.now(UTC),
        }
        schema = TABLES["training_windows"]
        self._store.insert(
            "training_windows",
            pa.Table.from_pylist([row], schema=schema),
            dedup_token=f"training-window-{window.window_id}-{state}",
        )

    def has_run(self, window_id: str) -> bool:
        """Whether a trainer (or this scheduler) recorded a run of the window."""
        table = self._store.sql(
            f"SELECT count() AS runs FROM {self._db}.training_runs WHERE window_id = {{id:String}}",
            {"id": window_id},
        )
        return bool(table.column("runs")[0].as_py())

    def record_failure(
        self, window: PlannedWindow, reason: str, *, started_at: datetime, finished_at: datetime
    ) -> None:
        """A `failed` training run for a job that ended without recording one itself."""
        record_run(
            self._store,
            TrainingRun(
                run_id=window.job_name, agent_name=window.target.agent,
                algorithm=window.target.algo, window_id=window.window_id, dataset_hash="",
                episodes=window.episodes, parent_version=None, candidate_version="",
                outcome="failed", reason=reason, metrics={}, started_at=started_at,
                finished_at=finished_at,
            ),
        )  # fmt: skip
