"""`fulmen demo`: the whole loop on the embedded default — an agent working, its episodes
landing in the store, a trainer job improving it, the agent switching to the new version,
the reward rising — with no broker, no server and no cluster.

    summary = run_demo(DemoSettings())      # .fulmen/demo/summary.json and reward.png

`DemoLoop` (`_loop.py`) wires the parts and records what happened (`_records.py`); its
trainer jobs are set up by `_trainer_jobs.py`, its out dir and store by `_workspace.py`;
`_report.py` writes what it shows at the end.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from fulmen.demo._loop import DemoLoop
from fulmen.demo._records import JobRecord, LoopRecord
from fulmen.demo._report import (
    BASE,
    VersionSummary,
    plot_reward,
    show_browse_hint,
    show_table,
    summarize,
    write_summary,
)
from fulmen.demo._settings import TASK_PRESETS, DemoSettings, task_settings
from fulmen.demo._workspace import fresh_out_dir, served_store
from fulmen.store import StoreSettings

__all__ = [
    "BASE",
    "TASK_PRESETS",
    "DemoLoop",
    "DemoResult",
    "DemoSettings",
    "JobRecord",
    "LoopRecord",
    "VersionSummary",
    "run_demo",
    "task_settings",
]


@dataclass(frozen=True, slots=True)
class DemoResult:
    """What a demo run left: its versions and jobs, and where it wrote them."""

    versions: list[VersionSummary]
    record: LoopRecord
    summary: Path
    plot: Path


def run_demo(settings: DemoSettings, console: Console | None = None) -> DemoResult:
    """Run the loop under `settings.out_dir` (cleared first), then report."""
    console = console or Console()
    out = settings.out_dir
    fresh_out_dir(out)
    store_settings = settings.store or StoreSettings(path=out / "store")
    with served_store(store_settings) as store:
        record = DemoLoop(settings, store, console).run()
        versions = summarize(record, store, agent=settings.agent_name, algo=settings.algo)
        summary, plot = out / "summary.json", out / "reward.png"
        write_summary(summary, versions, record)
        plot_reward(plot, store, versions, agent=settings.agent_name)
    show_table(console, versions)
    console.print(
        f"{len(record.jobs)} trainer jobs in {record.wall_s / 60:.1f} min; "
        f"wrote {summary} and {plot}."
    )
    show_browse_hint(console, store_settings.path)
    return DemoResult(versions, record, summary, plot)
