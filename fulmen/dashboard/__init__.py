"""The dashboard (`fulmen dashboard`): rollouts and episodes with filters, a rollout's span
tree, reward by version over time, the versions' lineage, releases and training runs, and
the stream workers' health, as server-rendered pages over the LightningStore
(docs/dashboard.md).

`create_app(StoreReader(source, database))` is the Starlette app over any `SqlSource` (a
`LightningStore`, or `ClientSource` around a clickhouse-connect client); `serve` runs it in
the foreground, `serve_in_thread` on a free port for tests.
"""

from fulmen.dashboard._app import create_app
from fulmen.dashboard._errors import BadFilter, DashboardError
from fulmen.dashboard._filters import (
    ROLLOUT_STATUSES,
    RewardQuery,
    RolloutFilter,
    RolloutStatus,
    parse_reward_query,
    parse_rollout_filter,
)
from fulmen.dashboard._reader import ClientSource, SqlSource, StoreReader
from fulmen.dashboard._run import serve, serve_in_thread
from fulmen.dashboard._worker_metrics import WorkerStatus, parse_worker_metrics, read_worker

__all__ = [
    "ROLLOUT_STATUSES",
    "BadFilter",
    "ClientSource",
    "DashboardError",
    "RewardQuery",
    "RolloutFilter",
    "RolloutStatus",
    "SqlSource",
    "StoreReader",
    "WorkerStatus",
    "create_app",
    "parse_reward_query",
    "parse_rollout_filter",
    "parse_worker_metrics",
    "read_worker",
    "serve",
    "serve_in_thread",
]
