"""Fixtures of the unit tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import fulmen
from fulmen.producers import FulmenSettings, InProcessBus


@pytest.fixture
def sdk_bus(tmp_path: Path) -> Iterator[InProcessBus]:
    """`fulmen.configure` on a fresh bus (agent `calc`, no OpenAI capture), shut down after."""
    bus = InProcessBus()
    settings = FulmenSettings(
        producer={"spill_dir": tmp_path, "agent_name": "calc", "capture_openai": False}
    )
    fulmen.configure(settings, bus=bus)
    yield bus
    fulmen.shutdown()
