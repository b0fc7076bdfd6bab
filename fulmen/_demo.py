"""`fulmen demo`: an instrumented agent on the embedded default, through the stream stage
into the LightningStore.

Until the trainer stage lands, the demo shows the path from the agent to the store: a small
tool-using agent runs rollouts through the SDK into the in-process bus; the embedded runner
decodes them, assembles scored episodes and writes everything to chDB under `.fulmen/demo`;
the demo then asks the store what happened, in SQL.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import tempfile
from pathlib import Path

from rich.console import Console
from rich.progress import track
from rich.table import Table

import fulmen
from fulmen.producers import FulmenSettings, InProcessBus
from fulmen.store import LightningStore, StoreSettings
from fulmen.streams import AssemblyPolicy, EmbeddedRunner

DEMO_DIR = Path(".fulmen/demo")


def _exact(a: int, b: int, op: str) -> int:
    if op == "/":
        return a // b
    return a + b if op == "+" else a * b


@fulmen.tool
def calculator(a: int, b: int, op: str) -> int:
    return _exact(a, b, op)


@fulmen.rollout(task_id=lambda question, rng: "".join(map(str, question)))
def arithmetic_agent(question: tuple[int, int, str], rng: random.Random) -> int:
    """Answers with the calculator, sometimes sloppily: a reward tells which."""
    a, b, op = question
    answer = calculator(a, b, op) + (1 if rng.random() < 0.3 else 0)
    fulmen.emit_reward(1.0 if answer == _exact(a, b, op) else 0.0)
    return answer


def run_demo(
    *, rollouts: int = 50, seed: int = 0, console: Console | None = None
) -> LightningStore:
    """Run the demo; returns the (open) store it filled."""
    console = console or Console()
    shutil.rmtree(DEMO_DIR / "store", ignore_errors=True)
    store = LightningStore(StoreSettings(path=DEMO_DIR / "store"))
    bus = InProcessBus()
    with tempfile.TemporaryDirectory() as spill:
        settings = FulmenSettings(producer={"agent_name": "arithmetic", "spill_dir": Path(spill)})
        producer = fulmen.configure(settings, bus=bus)
        # A grace period longer than the sender's hand-off delay: episodes are assembled
        # once, with all their rewards (a shorter one shows late rewards as revisions).
        runner = EmbeddedRunner(bus, store, policy=AssemblyPolicy(grace_s=1.0))
        rng = random.Random(seed)
        for _ in track(range(rollouts), description="agent rollouts", console=console):
            question = (rng.randint(0, 9), rng.randint(0, 3), rng.choice("+*/"))
            # A division by zero is recorded as a failed rollout and a failed tool call.
            with contextlib.suppress(ZeroDivisionError):
                arithmetic_agent(question, rng)
            runner.step()
        producer.flush(10)
        fulmen.shutdown()
        runner.finish()
    _show(console, store, runner)
    return store


def _show(console: Console, store: LightningStore, runner: EmbeddedRunner) -> None:
    db = store.settings.database
    counts = Table(title=f"LightningStore ({store.settings.path})")
    for column in ("table", "rows"):
        counts.add_column(column)
    for table in ("spans", "rewards", "rollouts", "episodes", "triplets", "dead_letters"):
        n = store.sql(f"SELECT count() AS n FROM {db}.{table}")["n"][0].as_py()
        counts.add_row(table, str(n))
    console.print(counts)
    _print_query(
        console,
        "success rate by task (worst five)",
        store.sql(
            f"SELECT task_id, finished_count, round(success_rate, 2) AS success_rate "
            f"FROM {db}.success_by_agent_task ORDER BY success_rate, task_id LIMIT 5"
        ),
    )
    _print_query(
        console,
        "tool calls",
        store.sql(
            f"SELECT tool_name, sum(call_count) AS calls, sum(error_count) AS errors "
            f"FROM {db}.tool_error_rate GROUP BY tool_name"
        ),
    )
    mean = store.sql(f"SELECT round(avg(reward), 3) AS r FROM {db}.episodes")["r"][0].as_py()
    console.print(
        f"{runner.stats.episodes_out} episodes assembled, mean reward {mean}; "
        f'ask more with: fulmen sql "..." (FULMEN_STORE__PATH={store.settings.path})'
    )


def _print_query(console: Console, title: str, result: object) -> None:
    import pyarrow as pa

    assert isinstance(result, pa.Table)
    table = Table(*result.column_names, title=title)
    for row in result.to_pylist():
        table.add_row(*(str(value) for value in row.values()))
    console.print(table)
