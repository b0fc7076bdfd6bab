"""Forgetting a user: deleting the user's rollouts from every table that holds them, and the
tombstones that keep later arrivals out of windows (migration 0009, docs/store.md)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from clickhouse_connect.driver.client import Client

from fulmen.errors import FulmenError
from fulmen.schemas import USER_ID_LABEL

# Tables keyed by rollout: every row of a forgotten rollout goes. Dead letters hold the raw
# message (its key is the rollout id); the hourly aggregates hold no row of any one user.
_ROLLOUT_TABLES = ("spans", "rewards", "rollouts", "feedback", "episodes", "triplets")


class ForgetError(FulmenError):
    """A user id that cannot be forgotten (empty)."""


@dataclass(frozen=True)
class Forgotten:
    """What `forget_user` deleted: the user's rollouts (`rollout_ids`, every one forgotten so
    far, also by an earlier call) and the rows deleted now, by table."""

    rollout_ids: tuple[str, ...]
    rows: dict[str, int]


def user_hash(user_id: str) -> str:
    """How tombstones keep a user: the SHA-256 of the id, lower-case hex."""
    return hashlib.sha256(user_id.encode()).hexdigest()


def not_forgotten(database: str) -> str:
    """A SQL condition on `rollout_id`: true unless the rollout was forgotten, or its
    lifecycle events (also ones that arrived after the forget) name a forgotten user."""
    return (
        f"rollout_id NOT IN (SELECT rollout_id FROM {database}.forgotten_rollouts) "
        f"AND rollout_id NOT IN (SELECT rollout_id FROM {database}.rollouts "
        f"WHERE metadata['{USER_ID_LABEL}'] != '' "
        f"AND lower(hex(SHA256(metadata['{USER_ID_LABEL}']))) IN "
        f"(SELECT user_sha256 FROM {database}.forgotten_users))"
    )


def forget_user(client: Client, database: str, user_id: str) -> Forgotten:
    """Tombstone `user_id`, then delete (ClickHouse lightweight DELETE, synchronous) every row
    of the user's rollouts — those whose lifecycle events carry `user_id` as their `user_id`
    label — from spans, rewards, rollouts, feedback, episodes, triplets and dead letters.
    Idempotent: calling it again deletes what arrived since.

    Raises:
        ForgetError: `user_id` is empty.
    """
    if not user_id:
        raise ForgetError("the user id to forget is empty")
    digest = user_hash(user_id)
    client.insert(f"{database}.forgotten_users", [[digest]], column_names=["user_sha256"])
    found = client.query(
        f"SELECT DISTINCT rollout_id FROM {database}.rollouts "
        f"WHERE metadata['{USER_ID_LABEL}'] = {{user:String}}",
        parameters={"user": user_id},
    ).result_rows
    known = client.query(
        f"SELECT DISTINCT rollout_id FROM {database}.forgotten_rollouts "
        "WHERE user_sha256 = {digest:String}",
        parameters={"digest": digest},
    ).result_rows
    new = sorted({row[0] for row in found} - {row[0] for row in known})
    if new:
        client.insert(
            f"{database}.forgotten_rollouts",
            [[rollout_id, digest] for rollout_id in new],
            column_names=["rollout_id", "user_sha256"],
        )
    rollout_ids = tuple(sorted({row[0] for row in found} | {row[0] for row in known}))
    rows: dict[str, int] = {}
    if not rollout_ids:
        return Forgotten(rollout_ids=(), rows=rows)
    parameters = {"ids": list(rollout_ids)}
    for table, column in (*((t, "rollout_id") for t in _ROLLOUT_TABLES), ("dead_letters", "key")):
        where = f"{column} IN {{ids:Array(String)}}"
        rows[table] = int(
            client.query(
                f"SELECT count() FROM {database}.{table} WHERE {where}", parameters=parameters
            ).result_rows[0][0]
        )
        if rows[table]:
            client.command(
                f"DELETE FROM {database}.{table} WHERE {where}",
                parameters=parameters,
                settings={"lightweight_deletes_sync": 2},
            )
    return Forgotten(rollout_ids=rollout_ids, rows=rows)
