"""The process-wide producer behind `fulmen.rollout`, `fulmen.emit_reward` and auto-capture."""

from __future__ import annotations

import atexit
import threading

from fulmen.producers._producer import Producer, transport_for
from fulmen.producers._settings import FulmenSettings
from fulmen.producers.transport import InProcessBus, Transport

_lock = threading.RLock()
_producer: Producer | None = None


def configure(
    settings: FulmenSettings | None = None,
    *,
    transport: Transport | None = None,
    bus: InProcessBus | None = None,
) -> Producer:
    """Create the process-wide producer (closing any previous one) and, unless disabled,
    start capturing OpenAI client calls. Called implicitly, from the environment, by the
    first rollout. The producer is flushed and closed at interpreter exit."""
    global _producer
    settings = settings or FulmenSettings()
    with _lock:
        if _producer is not None:
            _producer.close()
        _producer = Producer(settings, transport=transport or transport_for(settings, bus=bus))
        atexit.unregister(shutdown)
        atexit.register(shutdown)
    if settings.producer.capture_openai:
        from fulmen.producers._openai import instrument_openai

        instrument_openai()
    return _producer


def get_producer() -> Producer:
    """The process-wide producer, configured from the environment on first use."""
    producer = _producer
    if producer is not None:
        return producer
    with _lock:  # two threads starting their first rollout at once configure once
        return _producer if _producer is not None else configure()


def shutdown(timeout_s: float | None = None) -> None:
    """Deliver or spill everything emitted so far and stop the producer."""
    global _producer
    with _lock:
        producer, _producer = _producer, None
    if producer is not None:
        producer.close(timeout_s)
