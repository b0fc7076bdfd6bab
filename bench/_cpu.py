"""CPU time of processes, read from /proc (Linux): what each stage of the data plane costs."""

from __future__ import annotations

import os
from pathlib import Path

_TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid: int) -> float:
    """User plus system CPU seconds `pid` has used so far, all its threads together."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) * _TICK_S  # utime, stime


def load_average_1m() -> float:
    """The 1-minute load average, recorded at a benchmark's start."""
    return round(os.getloadavg()[0], 2)
