"""Where encoded events go: the interface the emitter drives, and the in-process bus of the
embedded default. Kafka's implementation lives in `fulmen.kafka`."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

from fulmen.errors import FulmenError

FailureListener = Callable[[str, bytes, bytes, str, bool], None]
"""`(topic, key, value, reason, permanent)`: `permanent` when sending the message again
cannot succeed (the broker refused it as too large, invalid or unauthorized)."""


class TransportFull(FulmenError):
    """The transport's bounded buffer is full; the caller spills instead of waiting."""


class Transport(ABC):
    """Asynchronous delivery of (topic, key, value) messages, in order per key.

    `produce` never blocks: it queues or raises `TransportFull` (any other exception means
    this one message was refused). Messages that cannot be delivered are handed back, in
    order, to the failure listener from within `poll`, `flush` or `purge`, on the thread
    that calls them.
    """

    def __init__(self) -> None:
        self._on_failure: FailureListener = _ignore

    def listen(self, on_failure: FailureListener) -> None:
        self._on_failure = on_failure

    def report_failure(
        self, topic: str, key: bytes, value: bytes, reason: str, *, permanent: bool = False
    ) -> None:
        self._on_failure(topic, key, value, reason, permanent)

    @abstractmethod
    def produce(self, topic: str, key: bytes, value: bytes) -> None: ...

    @abstractmethod
    def poll(self, timeout_s: float) -> None:
        """Serve delivery reports, waiting at most `timeout_s` for one."""

    @abstractmethod
    def pending(self) -> int:
        """Messages queued or in flight, not yet delivered nor reported failed."""

    def unreachable(self) -> bool:
        """Whether, as far as the client last knew, no broker can be reached. A transport that
        cannot tell says False: it is then never taken for down."""
        return False

    @abstractmethod
    def flush(self, timeout_s: float) -> int:
        """Wait up to `timeout_s` for pending messages; returns how many are still pending."""

    @abstractmethod
    def purge(self) -> None:
        """Give up on every pending message, reporting each as failed."""


def _ignore(topic: str, key: bytes, value: bytes, reason: str, permanent: bool) -> None:
    del topic, key, value, reason, permanent


@dataclass(frozen=True)
class BusMessage:
    offset: int
    key: bytes
    value: bytes


class InProcessBus:
    """Topics as in-memory logs, for the embedded default (no broker).

    Each topic keeps at most `capacity` unreleased messages; a consumer calls `release`
    once it has durably processed up to an offset. Thread-safe.
    """

    def __init__(self, *, capacity: int = 1_000_000) -> None:
        self._capacity = capacity
        self._logs: dict[str, list[BusMessage]] = {}
        self._next_offset: dict[str, int] = {}
        self._changed = threading.Condition()

    def append(self, topic: str, key: bytes, value: bytes) -> int:
        with self._changed:
            log = self._logs.setdefault(topic, [])
            if len(log) >= self._capacity:
                raise TransportFull(f"in-process topic {topic} holds {self._capacity} messages")
            offset = self._next_offset.get(topic, 0)
            self._next_offset[topic] = offset + 1
            log.append(BusMessage(offset, key, value))
            self._changed.notify_all()
            return offset

    def read(
        self, topic: str, offset: int, *, max_messages: int, timeout_s: float
    ) -> list[BusMessage]:
        """Messages from `offset` on, waiting up to `timeout_s` when there are none yet."""
        with self._changed:
            self._changed.wait_for(lambda: self._next_offset.get(topic, 0) > offset, timeout_s)
            log = self._logs.get(topic, [])
            start = max(0, offset - log[0].offset) if log else 0
            return log[start : start + max_messages]

    def release(self, topic: str, before_offset: int) -> None:
        """Forget messages before `before_offset`, making room for new ones."""
        with self._changed:
            log = self._logs.get(topic, [])
            self._logs[topic] = [m for m in log if m.offset >= before_offset]


class InProcessTransport(Transport):
    """Delivers straight into an `InProcessBus`: nothing is ever pending."""

    def __init__(self, bus: InProcessBus) -> None:
        super().__init__()
        self.bus = bus

    def produce(self, topic: str, key: bytes, value: bytes) -> None:
        self.bus.append(topic, key, value)

    def poll(self, timeout_s: float) -> None:
        del timeout_s

    def pending(self) -> int:
        return 0

    def flush(self, timeout_s: float) -> int:
        return 0

    def purge(self) -> None:
        return None
