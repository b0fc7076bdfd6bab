"""The control topic as the release controller and `fulmen rollback` see it: read from its
beginning into a `ReleaseBoard`, plus the last hold recorded for each canary."""

from __future__ import annotations

import time

from fulmen.producers import (
    ControlReader,
    FulmenSettings,
    InProcessBus,
    InProcessControlReader,
    KafkaControlReader,
    ReleaseBoard,
    codec_for,
    decode_control,
)
from fulmen.releases._errors import ReleaseError
from fulmen.schemas import ReleaseDecision

_READ_S = 0.25


def control_reader(settings: FulmenSettings, *, bus: InProcessBus | None = None) -> ControlReader:
    """A reader of the control topic `settings` name: on `bus` for the in-process transport
    (which needs one), else on Kafka."""
    topic = settings.topics.for_event("decision")
    if settings.transport == "inprocess":
        if bus is None:
            raise ReleaseError(
                "the control topic of the in-process transport is in the process that owns "
                "its bus: set FULMEN_TRANSPORT=kafka (and FULMEN_KAFKA__BOOTSTRAP_SERVERS)"
            )
        return InProcessControlReader(bus, topic)
    return KafkaControlReader(settings.kafka, topic)


class ControlView:
    """The control topic folded so far. `catch_up` reads what is there now; `board` is the
    fold, `last_hold` the reason of the last hold decision on each canary."""

    def __init__(self, reader: ControlReader, settings: FulmenSettings) -> None:
        self._reader = reader
        self._codec = codec_for(settings)
        self._topic = settings.topics.for_event("decision")
        self.board = ReleaseBoard()
        self.last_hold: dict[str, str] = {}

    def catch_up(self, timeout_s: float = 30.0) -> None:
        """Fold every message on the topic now (those published before the call, at least
        once the reader has caught up with the topic's end). Raises `ReleaseError` when the
        topic cannot be read to its end within `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while True:
            messages = self._reader.read(_READ_S)
            for message in messages:
                event = decode_control(self._codec, self._topic, message)
                if event is None:
                    continue
                self.board.apply(event)
                if isinstance(event, ReleaseDecision) and event.action == "hold":
                    self.last_hold[event.version_id] = event.reason
            if not messages and self._reader.caught_up():
                return
            if time.monotonic() > deadline:
                raise ReleaseError(
                    f"the control topic {self._topic} was not read to its end within {timeout_s} s"
                )

    def close(self) -> None:
        self._reader.close()
