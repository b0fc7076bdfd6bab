"""`rollout(reward=...)`: a rollout scored from its function's return value."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest

import fulmen
from fulmen.producers import InProcessBus
from fulmen.schemas import Event, Reward, RolloutEvent
from tests.support.sdk import emitted


@pytest.fixture
def bus(sdk_bus: InProcessBus) -> InProcessBus:
    return sdk_bus


def _events(bus: InProcessBus) -> list[Event]:
    return emitted(bus)


def _rewards(events: list[Event]) -> list[Reward]:
    return [e for e in events if isinstance(e, Reward)]


def _finished(events: list[Event]) -> RolloutEvent:
    finished = events[-1]
    assert isinstance(finished, RolloutEvent)
    assert finished.phase == "finished"
    return finished


def _exact(answer: str, question: str, *, expected: str) -> float:
    return 1.0 if answer == expected else 0.0


@fulmen.rollout(task_id=lambda question, expected: question, reward=_exact)
def solve(question: str, *, expected: str) -> str:
    if question == "2 + 2":
        return "4"
    return "I don't know"


def test_the_return_value_and_the_arguments_score_the_rollout(bus: InProcessBus) -> None:
    assert solve("2 + 2", expected="4") == "4"
    assert solve("7 * 6", expected="42") == "I don't know"
    events = _events(bus)
    rewards = _rewards(events)
    assert [r.value for r in rewards] == [1.0, 0.0]
    assert [(r.name, r.source, r.span_id) for r in rewards] == [
        ("reward", "programmatic", None)
    ] * 2
    started = [e for e in events if isinstance(e, RolloutEvent) and e.phase == "started"]
    assert [r.meta.rollout_id for r in rewards] == [s.meta.rollout_id for s in started]
    finished = [e for e in events if isinstance(e, RolloutEvent) and e.phase == "finished"]
    assert [f.status for f in finished] == ["succeeded", "succeeded"]
    for reward, done in zip(rewards, finished, strict=True):
        # the reward is emitted inside the rollout, before it finishes
        assert reward.meta.sequence < done.meta.sequence


def test_a_bool_counts_as_one_or_zero(bus: InProcessBus) -> None:
    @fulmen.rollout(reward=lambda answer, question: answer == "4")
    def agent(question: str) -> str:
        return "4" if question == "2 + 2" else "5"

    agent("2 + 2")
    agent("2 + 3")
    assert [r.value for r in _rewards(_events(bus))] == [1.0, 0.0]


def test_async_functions_are_scored_after_they_are_awaited(bus: InProcessBus) -> None:
    @fulmen.rollout(task_id=lambda n: str(n), reward=lambda result, n: float(result))
    async def agent(n: int) -> int:
        await asyncio.sleep(0.01)
        return n * 10

    async def main() -> list[int]:
        return await asyncio.gather(*(agent(n) for n in range(4)))

    assert asyncio.run(main()) == [0, 10, 20, 30]
    events = _events(bus)
    task_of = {
        e.meta.rollout_id: e.task_id
        for e in events
        if isinstance(e, RolloutEvent) and e.phase == "started"
    }
    rewards = _rewards(events)
    assert len(rewards) == 4
    for reward in rewards:
        assert reward.value == 10 * float(task_of[reward.meta.rollout_id])


def test_explicit_rewards_inside_are_kept_beside_the_returned_one(bus: InProcessBus) -> None:
    @fulmen.rollout(reward=lambda answer: float(len(answer)))
    def agent() -> str:
        fulmen.emit_reward(0.5, name="format")
        fulmen.emit_reward(0.25)
        return "abc"

    agent()
    rewards = _rewards(_events(bus))
    assert [(r.name, r.value) for r in rewards] == [
        ("format", 0.5),
        ("reward", 0.25),
        ("reward", 3.0),
    ]


def test_no_reward_when_the_function_raises(bus: InProcessBus) -> None:
    scored: list[object] = []

    def reward(result: object) -> float:
        scored.append(result)
        return 1.0

    @fulmen.rollout(task_id="div", reward=reward)
    def agent() -> float:
        return 1 / 0

    with pytest.raises(ZeroDivisionError):
        agent()
    events = _events(bus)
    assert scored == []
    assert _rewards(events) == []
    finished = _finished(events)
    assert finished.status == "failed"
    assert finished.error == "ZeroDivisionError: division by zero"


def test_no_reward_when_an_async_function_raises(bus: InProcessBus) -> None:
    @fulmen.rollout(reward=lambda result: 1.0)
    async def agent() -> None:
        raise RuntimeError("tool unavailable")

    with pytest.raises(RuntimeError):
        asyncio.run(agent())
    events = _events(bus)
    assert _rewards(events) == []
    assert _finished(events).status == "failed"


def test_a_reward_function_that_raises_is_a_reward_error_and_the_rollout_fails(
    bus: InProcessBus,
) -> None:
    @fulmen.rollout(task_id="t", reward=lambda answer: float(answer["score"]))
    def agent() -> str:
        return "not a dict"

    with pytest.raises(fulmen.RewardError, match="raised TypeError") as raised:
        agent()
    assert isinstance(raised.value.__cause__, TypeError)
    assert "agent" in str(raised.value)
    events = _events(bus)
    assert _rewards(events) == []
    finished = _finished(events)
    assert finished.status == "failed"
    assert finished.error is not None
    assert finished.error.startswith("RewardError: rollout(reward=...) of ")


@pytest.mark.parametrize(
    ("returned", "says"),
    [
        (float("nan"), "not a finite number"),
        (float("-inf"), "not a finite number"),
        (None, "not a number"),
        ("1.0", "not a number"),
    ],
)
def test_a_reward_that_is_not_a_finite_number_is_a_reward_error(
    bus: InProcessBus, returned: object, says: str
) -> None:
    @fulmen.rollout(reward=lambda result: returned)
    async def agent() -> str:
        return "done"

    with pytest.raises(fulmen.RewardError, match=says):
        asyncio.run(agent())
    events = _events(bus)
    assert _rewards(events) == []
    assert _finished(events).status == "failed"


def test_generators_cannot_be_scored_from_a_return_value(bus: InProcessBus) -> None:
    def numbers() -> Iterator[int]:
        yield 1

    async def stream() -> AsyncIterator[int]:
        yield 1

    with pytest.raises(TypeError, match="generator"):
        fulmen.rollout(reward=lambda result: 1.0)(numbers)
    with pytest.raises(TypeError, match="generator"):
        fulmen.rollout(reward=lambda result: 1.0)(stream)


def test_a_with_block_has_no_return_value_to_score(bus: InProcessBus) -> None:
    with pytest.raises(TypeError, match="emit_reward"), fulmen.rollout(reward=lambda r: 1.0):
        pass
    assert _events(bus) == []
