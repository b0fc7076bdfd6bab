"""Which rollout a request belongs to: from the URL path, else from headers.

An agent changes only its base URL::

    http://gateway:8100/v1                                      no rollout (passed through)
    http://gateway:8100/rollouts/{rollout_id}/v1                attempt 1
    http://gateway:8100/rollouts/{rollout_id}/attempts/{n}/v1
    http://gateway:8100/agents/{agent}/rollouts/{rollout_id}/attempts/{n}/v1

or keeps `/v1` and sends `X-Fulmen-Rollout-Id`, `X-Fulmen-Attempt`, `X-Fulmen-Agent`. What
the path says wins over the headers. The trace and root span ids of a rollout are derived
from its id and attempt, so every gateway replica (and a restarted one) agrees on them
without sharing state.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from fulmen.errors import FulmenError
from fulmen.producers._context import ActiveRollout

ROLLOUT_HEADER = "x-fulmen-rollout-id"
ATTEMPT_HEADER = "x-fulmen-attempt"
AGENT_HEADER = "x-fulmen-agent"
FULMEN_HEADERS = frozenset({ROLLOUT_HEADER, ATTEMPT_HEADER, AGENT_HEADER})
"""Headers the gateway consumes; they are not forwarded upstream."""


class BadIdentity(FulmenError):
    """The path or headers name a rollout badly (an attempt that is not a positive integer,
    an empty segment); answered with 400."""


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a request speaks for. `rollout_id` None: no rollout (the call is passed through
    and counted, not recorded). `agent_name` None: the gateway producer's agent name."""

    rollout_id: str | None = None
    attempt: int = 1
    agent_name: str | None = None

    def active(self) -> ActiveRollout:
        """The rollout as the SDK's span emitters take it (deterministic trace ids)."""
        assert self.rollout_id is not None
        trace_id, root_span_id = rollout_trace(self.rollout_id, self.attempt)
        return ActiveRollout(
            rollout_id=self.rollout_id,
            attempt=self.attempt,
            task_id="",
            trace_id=trace_id,
            root_span_id=root_span_id,
            agent_name=self.agent_name,
        )


@dataclass(frozen=True, slots=True)
class Route:
    """A request path split into the identity its prefix names and the rest (`v1/...`,
    `start`, `finish`, `rewards`, `feedback`, or '' for `POST /rollouts`)."""

    identity: Identity
    rest: str


@functools.lru_cache(maxsize=4096)  # a rollout's calls come one after another
def rollout_trace(rollout_id: str, attempt: int) -> tuple[str, str]:
    """The trace id (32 hex) and root span id (16 hex) of a rollout attempt."""
    digest = hashlib.sha256(f"{rollout_id}\x00{attempt}".encode()).hexdigest()
    return digest[:32], digest[32:48]


def parse_path(path: str) -> Route:
    """Split `/agents/{a}/rollouts/{id}/attempts/{n}/<rest>` (every prefix part optional, in
    that order; `attempts` only after `rollouts`).

    Raises:
        BadIdentity: an empty name or an attempt that is not a positive integer.
    """
    parts = path.strip("/").split("/") if path.strip("/") else []
    agent: str | None = None
    rollout_id: str | None = None
    attempt = 1
    if len(parts) >= 2 and parts[0] == "agents":
        agent = _name(parts[1], "agent name")
        parts = parts[2:]
    if parts[:1] == ["rollouts"] and len(parts) >= 2:
        rollout_id = _name(parts[1], "rollout id")
        parts = parts[2:]
        if len(parts) >= 2 and parts[0] == "attempts":
            attempt = _attempt(parts[1])
            parts = parts[2:]
    elif parts == ["rollouts"]:
        parts = []  # POST /rollouts: a new rollout
    return Route(Identity(rollout_id, attempt, agent), "/".join(parts))


def with_headers(identity: Identity, headers: Mapping[str, str]) -> Identity:
    """Fill what the path left unsaid from the `X-Fulmen-*` headers (lower-case keys)."""
    rollout_id = identity.rollout_id
    attempt = identity.attempt
    if rollout_id is None and ROLLOUT_HEADER in headers:
        rollout_id = _name(headers[ROLLOUT_HEADER], ROLLOUT_HEADER)
        if ATTEMPT_HEADER in headers:
            attempt = _attempt(headers[ATTEMPT_HEADER])
    agent = identity.agent_name
    if agent is None and AGENT_HEADER in headers:
        agent = _name(headers[AGENT_HEADER], AGENT_HEADER)
    return Identity(rollout_id, attempt, agent)


def _name(value: str, what: str) -> str:
    value = value.strip()
    if not value:
        raise BadIdentity(f"empty {what}")
    return value


def _attempt(value: str) -> int:
    try:
        attempt = int(value)
    except ValueError:
        raise BadIdentity(f"attempt must be a positive integer, not {value!r}") from None
    if attempt < 1:
        raise BadIdentity(f"attempt must be a positive integer, not {value!r}")
    return attempt
