"""Query parameters of the dashboard's pages, parsed into typed filters.

Every page takes its parameters through one parser here: unknown, repeated or malformed
parameters raise `BadFilter` (HTTP 400) rather than being ignored, so a typo in a URL never
looks like an empty result.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Literal, get_args
from urllib.parse import urlencode

from fulmen.dashboard._errors import BadFilter

RolloutStatus = Literal["succeeded", "failed", "cancelled", "timeout", "running"]
"""An episode's status once assembled; before that the rollout's own (`running` until it
finished)."""
ROLLOUT_STATUSES: tuple[RolloutStatus, ...] = get_args(RolloutStatus)
_STATUSES: dict[str, RolloutStatus] = {status: status for status in ROLLOUT_STATUSES}

Bucket = Literal["hour", "day"]
BUCKETS: tuple[Bucket, ...] = get_args(Bucket)
_BUCKETS: dict[str, Bucket] = {bucket: bucket for bucket in BUCKETS}

MAX_PAGE_SIZE = 500


@dataclass(frozen=True)
class RolloutFilter:
    """Which rollouts /rollouts lists. Unset fields do not filter.

    `agent` and `version` (the model version in force when the rollout started) match
    exactly, `task` is a case-sensitive substring of the task id; the reward range is
    inclusive and leaves out rollouts with no assembled episode yet; `since` ≤ start time <
    `until` (UTC). `page` counts from 1.
    """

    agent: str | None = None
    status: RolloutStatus | None = None
    task: str | None = None
    version: str | None = None
    min_reward: float | None = None
    max_reward: float | None = None
    since: datetime | None = None
    until: datetime | None = None
    page: int = 1
    page_size: int = 50

    def query(self, *, page: int | None = None) -> str:
        """This filter as a URL query string (without `?`), optionally for another page."""
        values: list[tuple[str, str]] = []
        for field in fields(self):
            value = getattr(self, field.name)
            if field.name == "page":
                value = self.page if page is None else page
            if value is None or value == field.default:
                continue
            text = value.isoformat() if isinstance(value, datetime) else str(value)
            values.append((field.name, text))
        return urlencode(values)


@dataclass(frozen=True)
class RewardQuery:
    """What /rewards charts: reward `name`, of one `agent` or all, per `bucket`."""

    name: str = "reward"
    agent: str | None = None
    bucket: Bucket = "hour"


def parse_rollout_filter(params: Sequence[tuple[str, str]]) -> RolloutFilter:
    """A `RolloutFilter` from URL query parameters (blank values count as unset).

    Raises `BadFilter` for an unknown or repeated parameter, an unknown status, a reward
    that is not a finite number, a time that is not ISO 8601, an empty range, or a page or
    page size out of range.
    """
    given = _single(params, {field.name for field in fields(RolloutFilter)})
    text = given.get("status")
    status = None if text is None else _STATUSES.get(text)
    if text is not None and status is None:
        raise BadFilter(f"status must be one of {', '.join(ROLLOUT_STATUSES)}, not {text!r}")
    found = RolloutFilter(
        agent=given.get("agent"),
        status=status,
        task=given.get("task"),
        version=given.get("version"),
        min_reward=_number(given, "min_reward"),
        max_reward=_number(given, "max_reward"),
        since=_time(given, "since"),
        until=_time(given, "until"),
        page=_integer(given, "page", default=1, low=1, high=1_000_000),
        page_size=_integer(given, "page_size", default=50, low=1, high=MAX_PAGE_SIZE),
    )
    if (
        found.min_reward is not None
        and found.max_reward is not None
        and found.min_reward > found.max_reward
    ):
        raise BadFilter(f"min_reward {found.min_reward} is above max_reward {found.max_reward}")
    if found.since is not None and found.until is not None and found.since >= found.until:
        raise BadFilter("since must be before until")
    return found


def parse_reward_query(params: Sequence[tuple[str, str]]) -> RewardQuery:
    """A `RewardQuery` from URL query parameters; raises `BadFilter` like
    `parse_rollout_filter` (and for a bucket other than hour or day)."""
    given = _single(params, {"name", "agent", "bucket"})
    text = given.get("bucket", "hour")
    bucket = _BUCKETS.get(text)
    if bucket is None:
        raise BadFilter(f"bucket must be one of {', '.join(BUCKETS)}, not {text!r}")
    return RewardQuery(name=given.get("name", "reward"), agent=given.get("agent"), bucket=bucket)


def parse_nothing(params: Sequence[tuple[str, str]]) -> None:
    """For pages without parameters: raises `BadFilter` if any is given."""
    _single(params, set())


def _single(params: Sequence[tuple[str, str]], known: set[str]) -> Mapping[str, str]:
    given: dict[str, str] = {}
    for name, value in params:
        if name not in known:
            allowed = ", ".join(sorted(known)) or "none"
            raise BadFilter(f"unknown parameter {name!r} (this page takes: {allowed})")
        if name in given:
            raise BadFilter(f"parameter {name!r} given more than once")
        if value.strip():
            given[name] = value.strip()
    return given


def _number(given: Mapping[str, str], name: str) -> float | None:
    text = given.get(name)
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        raise BadFilter(f"{name} must be a number, not {text!r}") from None
    if not math.isfinite(value):
        raise BadFilter(f"{name} must be a finite number, not {text!r}")
    return value


def _integer(given: Mapping[str, str], name: str, *, default: int, low: int, high: int) -> int:
    text = given.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise BadFilter(f"{name} must be a whole number, not {text!r}") from None
    if not low <= value <= high:
        raise BadFilter(f"{name} must be between {low} and {high}, not {value}")
    return value


def _time(given: Mapping[str, str], name: str) -> datetime | None:
    text = given.get(name)
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise BadFilter(
            f"{name} must be an ISO 8601 time such as 2026-05-01T12:00:00Z, not {text!r}"
        ) from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
