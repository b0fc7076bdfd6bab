"""An agent process for the crash tests: emits N spans through Kafka, reports its counters
as JSON on stdout, then exits normally (atexit spills), flushes first, or kills itself
(SIGKILL: no atexit, no flush), at once or once every event is on disk (`kill-spilled`).

    python -m tests.support.kafka_agent BOOTSTRAP SPILL_DIR N (exit|flush|kill|kill-spilled) \
        [BUFFER] [DURABILITY]

DURABILITY is `ProducerSettings.durability` (default `memory`); an outage counts after 1 s.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import sys
import time
from pathlib import Path

import fulmen
from fulmen.producers import FulmenSettings
from tests.support.events import llm_span


def main() -> None:
    bootstrap, spill_dir, count, ending = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    buffer = sys.argv[5] if len(sys.argv) > 5 else "100000"
    durability = sys.argv[6] if len(sys.argv) > 6 else "memory"
    settings = FulmenSettings(
        transport="kafka",
        kafka={"bootstrap_servers": bootstrap, "options": {"queue.buffering.max.messages": buffer}},
        producer={
            "spill_dir": spill_dir,
            "capture_openai": False,
            "flush_timeout_s": 1.0,
            "durability": durability,
            "outage_spill_after_s": 1.0,
        },
    )
    producer = fulmen.configure(settings)
    for i in range(count):
        producer.emit(llm_span(f"rollout-{i % 7}", i))
    deadline = time.monotonic() + 20
    while producer.stats().queued and time.monotonic() < deadline:
        time.sleep(0.01)
    flushed = producer.flush(100) if ending == "flush" else None
    if ending == "kill-spilled":
        deadline = time.monotonic() + 20
        while producer.stats().spilled < count and time.monotonic() < deadline:
            time.sleep(0.01)
    report = {**producer.stats().__dict__, "flushed": flushed, "spill_slot": spill_slot(spill_dir)}
    print(json.dumps(report), flush=True)
    if ending.startswith("kill"):
        os.kill(os.getpid(), signal.SIGKILL)


def spill_slot(spill_dir: str) -> str:
    """The slot this process locked: the diagnosis when a restart finds no spilled events."""
    for slot in sorted(Path(spill_dir).glob("slot-*")):
        try:
            with (slot / ".lock").open("rb") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return slot.name
    return "none"


if __name__ == "__main__":
    main()
