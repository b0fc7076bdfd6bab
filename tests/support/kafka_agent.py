"""An agent process for the crash tests: emits N spans through Kafka, reports its counters
as JSON on stdout, then exits normally (atexit spills), flushes first, or kills itself
(SIGKILL: no atexit, no flush), at once or once every event is on disk (`kill-spilled`).

    python -m tests.support.kafka_agent BOOTSTRAP SPILL_DIR N (exit|flush|kill|kill-spilled) \
        [BUFFER] [DURABILITY]

DURABILITY is `ProducerSettings.durability` (default `memory`); an outage counts after 1 s.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

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
    if ending == "flush":
        producer.flush(60)
    if ending == "kill-spilled":
        deadline = time.monotonic() + 20
        while producer.stats().spilled < count and time.monotonic() < deadline:
            time.sleep(0.01)
    print(json.dumps(producer.stats().__dict__), flush=True)
    if ending.startswith("kill"):
        os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    main()
