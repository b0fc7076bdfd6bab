"""The three-line instrumentation: rollouts (sync, async, with), tools, steps and rewards."""

from __future__ import annotations

import asyncio

import pytest

import fulmen
from fulmen.producers import InProcessBus
from fulmen.schemas import Event, Reward, RolloutEvent, Span
from tests.support.sdk import emitted


@pytest.fixture
def bus(sdk_bus: InProcessBus) -> InProcessBus:
    return sdk_bus


def _events(bus: InProcessBus) -> list[Event]:
    return emitted(bus)


@fulmen.tool
def add(a: int, b: int) -> int:
    return a + b


@fulmen.step
def plan(question: str) -> int:
    return add(2, 2)


def test_decorated_rollout_emits_lifecycle_spans_and_reward(bus: InProcessBus) -> None:
    @fulmen.rollout(task_id=lambda question: question)
    def agent(question: str) -> int:
        answer = plan(question)
        fulmen.emit_reward(1.0, dimensions={"exact": 1.0})
        return answer

    assert agent("2+2") == 4
    events = _events(bus)
    assert [type(e).__name__ for e in events] == [
        "RolloutEvent",
        "Span",
        "Span",
        "Reward",
        "Span",
        "RolloutEvent",
    ]
    started, tool_span, step_span, reward, root, finished = events
    assert isinstance(started, RolloutEvent)
    assert started.task_id == "2+2"
    assert started.input == '{"question": "2+2"}'
    assert isinstance(tool_span, Span)
    assert tool_span.tool is not None
    assert tool_span.tool.arguments == '{"a": 2, "b": 2}'
    assert tool_span.tool.result == "4"
    assert isinstance(step_span, Span)
    assert isinstance(root, Span)
    assert tool_span.parent_span_id == step_span.span_id
    assert step_span.parent_span_id == root.span_id
    assert root.parent_span_id is None
    assert isinstance(reward, Reward)
    assert reward.dimensions == {"exact": 1.0}
    assert isinstance(finished, RolloutEvent)
    assert finished.status == "succeeded"
    assert {e.meta.rollout_id for e in events} == {started.meta.rollout_id}
    assert {e.meta.agent_name for e in events} == {"calc"}
    assert len({e.meta.event_id for e in events}) == len(events)


def test_exception_finishes_the_rollout_failed_and_propagates(bus: InProcessBus) -> None:
    @fulmen.rollout(task_id="div")
    def agent() -> float:
        return add(1, 1) / 0

    with pytest.raises(ZeroDivisionError):
        agent()
    finished = _events(bus)[-1]
    assert isinstance(finished, RolloutEvent)
    assert finished.status == "failed"
    assert finished.error == "ZeroDivisionError: division by zero"


def test_async_rollouts_are_isolated_per_task(bus: InProcessBus) -> None:
    @fulmen.rollout(task_id=lambda n: str(n))
    async def agent(n: int) -> int:
        await asyncio.sleep(0.01)
        fulmen.emit_reward(float(n))
        return n

    async def main() -> list[int]:
        return await asyncio.gather(*(agent(n) for n in range(5)))

    assert asyncio.run(main()) == list(range(5))
    events = _events(bus)
    by_rollout: dict[str, list[Event]] = {}
    for event in events:
        by_rollout.setdefault(event.meta.rollout_id, []).append(event)
    assert len(by_rollout) == 5
    for rollout_events in by_rollout.values():
        started = rollout_events[0]
        reward = next(e for e in rollout_events if isinstance(e, Reward))
        assert isinstance(started, RolloutEvent)
        assert reward.value == float(started.task_id)


def test_cancellation_is_recorded_as_cancelled(bus: InProcessBus) -> None:
    @fulmen.rollout
    async def agent() -> None:
        await asyncio.sleep(10)

    async def main() -> None:
        task = asyncio.create_task(agent())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    finished = _events(bus)[-1]
    assert isinstance(finished, RolloutEvent)
    assert finished.status == "cancelled"


def test_reward_outside_a_rollout_needs_a_rollout_id(bus: InProcessBus) -> None:
    with pytest.raises(fulmen.NoActiveRollout):
        fulmen.emit_reward(1.0)
    fulmen.emit_reward(0.5, rollout_id="earlier-rollout", source="judge")
    (reward,) = _events(bus)
    assert isinstance(reward, Reward)
    assert reward.meta.rollout_id == "earlier-rollout"


@pytest.mark.parametrize(
    ("value", "dimensions", "named"),
    [
        (float("nan"), {}, "value"),
        (float("inf"), {}, "value"),
        (1.0, {"exact": float("-inf")}, "dimensions['exact']"),
    ],
)
def test_a_reward_that_is_not_finite_is_a_clear_error(
    bus: InProcessBus, value: float, dimensions: dict[str, float], named: str
) -> None:
    with fulmen.rollout(task_id="t"), pytest.raises(ValueError, match="finite") as raised:
        fulmen.emit_reward(value, dimensions=dimensions)
    assert named in str(raised.value)
    assert not [e for e in _events(bus) if isinstance(e, Reward)]


def test_tools_outside_a_rollout_just_run(bus: InProcessBus) -> None:
    assert add(1, 2) == 3
    assert _events(bus) == []
