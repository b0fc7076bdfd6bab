"""The process-wide producer behind `fulmen.rollout`, `fulmen.emit_reward` and auto-capture,
and the follower that keeps its versions current."""

from __future__ import annotations

import atexit
import logging
import threading
from typing import TYPE_CHECKING

from fulmen.producers._producer import Producer, transport_for
from fulmen.producers._resources import VersionListeners
from fulmen.producers._settings import FulmenSettings
from fulmen.producers.transport import InProcessBus, Transport

if TYPE_CHECKING:
    from fulmen.producers._control import VersionFollower

logger = logging.getLogger("fulmen.producers")

_lock = threading.RLock()
_producer: Producer | None = None
_follower: VersionFollower | None = None

version_listeners = VersionListeners()
"""The `fulmen.on_version` callbacks: process-wide, handed to every producer configured."""


def configure(
    settings: FulmenSettings | None = None,
    *,
    transport: Transport | None = None,
    bus: InProcessBus | None = None,
) -> Producer:
    """Create the process-wide producer (closing any previous one), start following the
    control topic and, unless disabled, capturing OpenAI client calls. Called implicitly,
    from the environment, by the first rollout. The producer is flushed and closed at
    interpreter exit.

    With `producer.follow_versions` (the default) it returns once the versions already on
    the control topic are applied, or after `producer.follow_startup_timeout_s` (with a
    warning; they are applied when the topic can be read).
    """
    global _producer, _follower
    settings = settings or FulmenSettings()
    with _lock:
        _stop(*_detach())
        _producer = Producer(
            settings,
            transport=transport or transport_for(settings, bus=bus),
            listeners=version_listeners,
        )
        atexit.unregister(shutdown)
        atexit.register(shutdown)
        config = settings.producer
        if config.follow_versions:
            # Imported here: `_control` imports this module for the agent-facing calls.
            from fulmen.producers._control import start_following

            _follower = start_following(_producer)
            if _follower is not None and not _follower.wait_caught_up(
                config.follow_startup_timeout_s
            ):
                logger.warning(
                    "fulmen has not read the control topic within %s s; going on with model "
                    "version %r, prompt version %r until it has",
                    config.follow_startup_timeout_s,
                    _producer.model_version,
                    _producer.resources_version,
                )
    if config.capture_openai:
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


def current_producer() -> Producer | None:
    """The process-wide producer if one is configured; never configures one."""
    return _producer


def shutdown(timeout_s: float | None = None) -> None:
    """Stop following versions, deliver or spill everything emitted so far and stop the
    producer."""
    with _lock:
        follower, producer = _detach()
    _stop(follower, producer, timeout_s)


def _detach() -> tuple[VersionFollower | None, Producer | None]:
    global _producer, _follower
    detached = _follower, _producer
    _follower = _producer = None
    return detached


def _stop(
    follower: VersionFollower | None, producer: Producer | None, timeout_s: float | None = None
) -> None:
    if follower is not None:
        follower.stop()
    if producer is not None:
        producer.close(timeout_s)
