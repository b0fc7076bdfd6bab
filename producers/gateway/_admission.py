"""The gateway's bound on calls in flight, and its counters.

The gateway holds at most `limit` calls at once (a stream counts until its last byte is
relayed); a call beyond that is refused at once with 503 and `Retry-After`, never queued.
Together with the producer's bounded queue and spill this bounds what the gateway holds.
Everything runs on the event loop's thread: plain integers, no locks.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class GatewayStats:
    """Counters since the gateway started (`GET /fulmen/stats`).

    `calls`: inference calls forwarded; `recorded`: those recorded as spans of a rollout;
    `unattributed`: those that named no rollout (passed through, not recorded);
    `upstream_errors`: answered by the upstream with a status >= 400, or not answered (502,
    504); `disconnects`: streams the agent left before their end; `rejected`: refused by the
    in-flight bound (503); `in_flight`: calls being served now.
    """

    calls: int = 0
    recorded: int = 0
    unattributed: int = 0
    upstream_errors: int = 0
    disconnects: int = 0
    rejected: int = 0
    in_flight: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class Admission:
    """Admits a call while fewer than `limit` are in flight."""

    def __init__(self, limit: int, stats: GatewayStats) -> None:
        self._limit = limit
        self._stats = stats

    def enter(self) -> bool:
        """Take a slot; False (and counted as rejected) when none is free."""
        if self._stats.in_flight >= self._limit:
            self._stats.rejected += 1
            return False
        self._stats.in_flight += 1
        return True

    def leave(self) -> None:
        self._stats.in_flight -= 1
