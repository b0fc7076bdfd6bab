"""The agent side of `make bench-capacity`: emits N events (whole rollouts) through the
producer SDK to Kafka, then prints its CPU cost as JSON.

    python -m bench._capacity_agent BOOTSTRAP TOPIC_PREFIX N SPILL_DIR

`build_us_per_event` is building the events (the agent's own objects); `sdk_us_per_event`
is the rest of the process's CPU, from the first `emit` until `flush` returned: the emit
calls, the sender thread's encoding and librdkafka's threads.
"""

from __future__ import annotations

import json
import resource
import sys
import time

import fulmen
from fulmen.producers import FulmenSettings
from tests.support.events import rollout


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    bootstrap, prefix, count, spill = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    settings = FulmenSettings(
        transport="kafka",
        kafka={"bootstrap_servers": bootstrap},
        topics={"prefix": prefix},
        producer={"spill_dir": spill, "capture_openai": False, "follow_versions": False},
    )
    producer = fulmen.configure(settings)
    started_cpu = _cpu_s()
    events = [event for i in range(count // 9) for event in rollout(f"capacity-{i}")]
    built_cpu = _cpu_s()
    started = time.perf_counter()
    for event in events:
        producer.emit(event)
    flushed = producer.flush(300)
    wall_s = time.perf_counter() - started
    sdk_cpu = _cpu_s() - built_cpu
    stats = producer.stats()
    print(
        json.dumps(
            {
                "events": len(events),
                "flushed": flushed,
                "lost": stats.lost,
                "build_us_per_event": (built_cpu - started_cpu) / len(events) * 1e6,
                "sdk_us_per_event": sdk_cpu / len(events) * 1e6,
                "sdk_events_per_s": len(events) / wall_s,
            }
        ),
        flush=True,
    )
    fulmen.shutdown()


if __name__ == "__main__":
    main()
