"""`fulmen demo`: an instrumented agent on the embedded default, and what it emitted.

Until the stream and trainer stages land, the demo shows the producer path: a small
tool-using agent runs rollouts through the SDK into the in-process bus; the demo then reads
the bus back, decodes every event, and shows one rollout's span tree.
"""

from __future__ import annotations

import random
import tempfile
from pathlib import Path

from rich.console import Console
from rich.progress import track
from rich.table import Table
from rich.tree import Tree

import fulmen
from fulmen.producers import FulmenSettings, InProcessBus
from fulmen.schemas import Event, Reward, RolloutEvent, SingleObjectCodec, Span


@fulmen.tool
def calculator(a: int, b: int, op: str) -> int:
    return a + b if op == "+" else a * b


@fulmen.rollout(task_id=lambda question, rng: "".join(map(str, question)))
def arithmetic_agent(question: tuple[int, int, str], rng: random.Random) -> int:
    """Answers with the calculator, sometimes sloppily: a reward tells which."""
    a, b, op = question
    answer = calculator(a, b, op) + (1 if rng.random() < 0.3 else 0)
    expected = a + b if op == "+" else a * b
    fulmen.emit_reward(
        1.0 if answer == expected else 0.0, dimensions={"exact": float(answer == expected)}
    )
    return answer


def run_demo(*, rollouts: int = 50, seed: int = 0, console: Console | None = None) -> list[Event]:
    """Run the demo; returns every event read back from the bus."""
    console = console or Console()
    bus = InProcessBus()
    with tempfile.TemporaryDirectory() as spill:
        settings = FulmenSettings(producer={"agent_name": "arithmetic", "spill_dir": Path(spill)})
        producer = fulmen.configure(settings, bus=bus)
        rng = random.Random(seed)
        for _ in track(range(rollouts), description="agent rollouts", console=console):
            arithmetic_agent((rng.randint(1, 9), rng.randint(1, 9), rng.choice("+*")), rng)
        producer.flush(10)
        stats = producer.stats()
        fulmen.shutdown()

    codec = SingleObjectCodec()
    events = [
        codec.decode(message.value, topic=topic)
        for topic in settings.topics.event_topics()
        for message in bus.read(topic, 0, max_messages=1_000_000, timeout_s=0)
    ]
    _show(console, events, settings)
    console.print(
        f"emitted {stats.emitted}, delivered {stats.delivered}, spilled {stats.spilled}, "
        f"dropped {stats.dropped}"
    )
    return events


def _show(console: Console, events: list[Event], settings: FulmenSettings) -> None:
    table = Table(title="events on the in-process bus")
    for column in ("topic", "events", "rollouts"):
        table.add_column(column)
    for topic in settings.topics.event_topics():
        mine = [e for e in events if settings.topics.for_event(e.event_type) == topic]
        table.add_row(topic, str(len(mine)), str(len({e.meta.rollout_id for e in mine})))
    console.print(table)
    rewards = [e.value for e in events if isinstance(e, Reward)]
    if rewards:
        console.print(f"mean reward {sum(rewards) / len(rewards):.2f} over {len(rewards)} rollouts")
    first = next((e for e in events if isinstance(e, RolloutEvent)), None)
    if first is None:
        return
    rollout_id = first.meta.rollout_id
    mine = sorted(
        (e for e in events if e.meta.rollout_id == rollout_id), key=lambda e: e.meta.sequence
    )
    tree = Tree(f"rollout {rollout_id} (task {first.task_id})")
    for event in mine:
        tree.add(f"#{event.meta.sequence} {event.event_type}: {_describe(event)}")
    console.print(tree)


def _describe(event: Event) -> str:
    if isinstance(event, Span):
        return f"{event.name} {event.tool.arguments if event.tool else ''} {event.status.code}"
    if isinstance(event, Reward):
        return f"{event.name}={event.value}"
    if isinstance(event, RolloutEvent):
        return f"{event.phase} {event.status or ''}"
    return event.version_id
