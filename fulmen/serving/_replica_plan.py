"""What one serving replica should hold, from the fold of the control topic: which model
versions to load, and which adapters no version needs any more to unload after a grace
period. Pure: `AdapterFollower` (`_follow.py`) does the HTTP calls and the acknowledgements.
"""

from __future__ import annotations

from fulmen.producers import ReleaseBoard
from fulmen.schemas import ControlEvent, ServingAck, VersionEvent

__all__ = ["ReplicaPlan"]


class ReplicaPlan:
    """The adapters one replica of `pool` holds, against those the control topic needs:
    every model name of a stable or canary model version of any target.

    * **Load** each needed model version that has an artifact and is not held; one that
      failed to load here is tried again only when it is published again.
    * **Unload** a held name no version needs once it has been unneeded for `grace_s`
      (seconds of the caller's clock); needed again before that, it is kept and its grace
      starts afresh next time. Unloading waits while this replica lacks a needed version
      (it failed to load, or is still loading) or another replica of the pool acknowledged
      `failed` for one: agents that await the pool's acknowledgements still run the older
      version then, until the canary is rolled back or the version loads.
    """

    def __init__(self, *, pool: str, grace_s: float) -> None:
        self._board = ReleaseBoard()
        self._pool = pool
        self._grace_s = grace_s
        self._versions: dict[str, VersionEvent] = {}  # model name -> its last loadable version
        self._held: set[str] = set()
        self._failed: set[str] = set()  # failed here, until published again
        self._pool_failed: dict[str, set[str]] = {}  # model name -> replicas whose last ack failed
        self._unneeded_since: dict[str, float] = {}

    def apply(self, event: ControlEvent) -> None:
        """Fold one control event, in topic order."""
        self._board.apply(event)
        match event:
            case VersionEvent(kind="model", model_name=str(name), artifact_uri=str()):
                self._versions[name] = event
                self._failed.discard(name)
            case ServingAck(pool=self._pool):
                failed = self._pool_failed.setdefault(event.model_name, set())
                if event.status == "failed":
                    failed.add(event.replica_id)
                else:
                    failed.discard(event.replica_id)
            case _:
                pass

    def to_load(self) -> list[VersionEvent]:
        """The needed versions to load here, in name order."""
        needed = self._board.needed_model_names() - self._held - self._failed
        return [self._versions[name] for name in sorted(needed) if name in self._versions]

    def to_unload(self, now: float) -> list[str]:
        """The held names whose grace ended by `now` (none while unloading waits)."""
        needed = self._board.needed_model_names()
        for name in self._held:
            if name in needed:
                self._unneeded_since.pop(name, None)
            else:
                self._unneeded_since.setdefault(name, now)
        if self.waiting(needed):
            return []
        return sorted(n for n, t in self._unneeded_since.items() if now - t >= self._grace_s)

    def waiting(self, needed: set[str]) -> bool:
        """Whether unloading waits: a loadable needed version is not held here, or a replica
        of the pool failed to load one."""
        missing = {name for name in needed if name in self._versions} - self._held
        return bool(missing) or any(self._pool_failed.get(name) for name in needed)

    def held(self) -> set[str]:
        return set(self._held)

    def version_of(self, name: str) -> str:
        """The id of the last version that published `name` with an artifact."""
        version = self._versions.get(name)
        return name if version is None else version.version_id

    def loaded(self, name: str) -> None:
        """`name` is loaded here (or the server already held it)."""
        self._held.add(name)
        self._failed.discard(name)

    def failed(self, name: str) -> None:
        """Loading `name` failed here."""
        self._failed.add(name)

    def unloaded(self, name: str) -> None:
        """`name` is no longer loaded here."""
        self._held.discard(name)
        self._unneeded_since.pop(name, None)
