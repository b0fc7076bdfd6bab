"""Process supervision: services started one after another, each ready before the next;
watched while they run; stopped in reverse order."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from types import TracebackType

from fulmen.up._service import Service, ServiceFailed, UpError

_POLL_S = 0.25


class Interrupted(UpError):
    """The stop event was set while a service was starting."""


class Supervisor:
    """Owns the services it started. Used as a context manager, it stops them all on exit,
    whatever happened: the last started first, each with SIGTERM and then SIGKILL after
    `stop_timeout_s`. `on_stop(service)` is called before each is stopped."""

    def __init__(
        self,
        stop: threading.Event,
        *,
        stop_timeout_s: float,
        on_stop: Callable[[Service], None] | None = None,
    ) -> None:
        self._stop = stop
        self._stop_timeout_s = stop_timeout_s
        self._on_stop = on_stop
        self.services: list[Service] = []
        """Started, in order."""
        self.finished: list[Service] = []
        """Those that ended on their own with code 0 and may (`Service.finishes`)."""

    def start(self, service: Service, *, timeout_s: float) -> None:
        """Start `service` and wait until it is ready.

        Raises `ServiceFailed` when it exits first or is not ready within `timeout_s`, and
        `Interrupted` when the stop event is set meanwhile; it is stopped with the rest.
        """
        self.services.append(service)
        service.start()
        deadline = time.monotonic() + timeout_s
        while not service.ready():
            code = service.exit_code()
            if code == 0 and service.finishes:  # done already: nothing to wait for
                self.finished.append(service)
                return
            if code is not None:
                raise ServiceFailed(service.name, f"exited with code {code}", service.tail())
            if time.monotonic() > deadline:
                reason = f"not ready after {timeout_s:g} s"
                raise ServiceFailed(service.name, reason, service.tail())
            if self._stop.wait(_POLL_S):
                raise Interrupted(f"stopped while {service.name} was starting")

    def watch(self) -> ServiceFailed | None:
        """Block until the stop event is set (None) or a service dies (its failure). A
        service that `finishes` and exits with 0 is set aside in `finished`."""
        while not self._stop.wait(_POLL_S):
            for service in self.services:
                if service in self.finished:
                    continue
                code = service.exit_code()
                if code == 0 and service.finishes:
                    self.finished.append(service)
                elif code is not None:
                    return ServiceFailed(service.name, f"exited with code {code}", service.tail())
        return None

    def stop_all(self) -> None:
        """Stop every started service, the last started first; idempotent."""
        while self.services:
            service = self.services.pop()
            if self._on_stop is not None:
                self._on_stop(service)
            service.stop(self._stop_timeout_s)

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_all()
