"""The multi-turn lookup task's contract: deterministic splits that never overlap, the
tool's replies turn by turn, when an episode ends, and its final and step rewards."""

from __future__ import annotations

import json

import pytest

from fulmen.tasks import CalculatorTask, LookupTask, Order, TaskCase, conversation
from fulmen.tasks.lookup import MAX_TURNS, orders

TASK = LookupTask()


def lookup(item: str) -> str:
    return json.dumps({"tool": "lookup", "item": item})


def calculator(expression: str) -> str:
    return json.dumps({"tool": "calculator", "expression": expression})


def solved(order: Order) -> list[str]:
    """A perfect episode: one lookup per item asked for, then the bill."""
    prices = dict(order.prices)
    bill = " + ".join(f"{n} * {prices[item]}" for item, n in order.quantities)
    return [lookup(item) for item, _ in order.quantities] + [calculator(bill)]


def test_splits_are_deterministic_and_disjoint() -> None:
    heldout = [case.task_id for case in TASK.heldout(200)]
    assert heldout == [case.task_id for case in LookupTask().heldout(200)]
    for seed in (0, 7, 20_000):  # 20,000 is the held-out seed itself
        training = [case.task_id for case in TASK.training(64, seed=seed)]
        assert len(training) == len(set(training)) == 64
        assert training == [case.task_id for case in LookupTask().training(64, seed=seed)]
        assert not set(training) & set(case.task_id for case in TASK.heldout(TASK.HELDOUT_POOL))


def test_questions_ask_for_one_or_two_items_the_shop_sells() -> None:
    drawn = orders(300, seed=1)
    counts = {len(order.quantities) for order in drawn}
    assert counts == {1, 2}
    two = sum(len(order.quantities) == 2 for order in drawn) / len(drawn)
    assert 0.3 < two < 0.5
    for order in drawn:
        assert {item for item, _ in order.quantities} <= dict(order.prices).keys()
        assert all(item in order.question for item, _ in order.quantities)


@pytest.mark.parametrize("case", TASK.training(40, seed=3), ids=lambda case: case.task_id)
def test_a_perfect_episode_earns_every_reward(case: TaskCase) -> None:
    task_id = case.task_id
    order = TASK.order(task_id)
    replies = solved(order)
    for turn in range(1, len(replies)):
        item, _ = order.quantities[turn - 1]
        result = TASK.tool_result(task_id, replies[:turn])
        assert result == f"lookup result: a {item} costs {dict(order.prices)[item]}"
    assert TASK.tool_result(task_id, replies) is None  # the calculator call ends it
    assert TASK.reward(task_id, replies[-1]) == 1.0
    assert TASK.step_rewards(task_id, replies) == [1.0] * len(replies)


def test_wrong_and_repeated_lookups_cost_turns_and_earn_nothing() -> None:
    case = next(c for c in TASK.training(50, seed=4) if len(TASK.order(c.task_id).quantities) == 1)
    order = TASK.order(case.task_id)
    [(item, n)] = order.quantities
    unsold = next(name for name in ("apple", "book", "candle", "cup", "hat", "kite")
                  if name not in dict(order.prices))  # fmt: skip
    replies = [lookup(unsold), lookup(item + "s"), lookup(item)]
    sold = ", ".join(name for name, _ in order.prices)
    assert TASK.tool_result(case.task_id, replies[:1]) == (
        f"lookup result: no {unsold!r} here; this shop sells {sold}"
    )
    assert TASK.tool_result(case.task_id, replies[:2]) == (
        f"lookup result: a {item} costs {dict(order.prices)[item]}"  # plural accepted
    )
    right = calculator(f"{n} * {dict(order.prices)[item]}")
    assert TASK.step_rewards(case.task_id, [*replies, right]) == [0.0, 1.0, 0.0, 1.0]
    assert TASK.tool_result(case.task_id, [*replies, lookup(item)]) is None  # MAX_TURNS
    assert len(replies) + 1 == MAX_TURNS


def test_a_reply_that_is_no_tool_call_ends_the_episode_unrewarded() -> None:
    case = TASK.heldout(1)[0]
    for reply in ("The answer is 12.", '{"tool": "search", "query": "x"}', "{not json"):
        assert TASK.tool_result(case.task_id, [reply]) is None
        assert TASK.reward(case.task_id, reply) == 0.0
    assert TASK.reward(case.task_id, calculator("1 / 0")) == 0.0
    assert TASK.reward(case.task_id, calculator("__import__('os')")) == 0.0


def test_unknown_task_ids_are_refused() -> None:
    with pytest.raises(KeyError, match="unknown lookup task"):
        TASK.reward("lookup-000000000000", calculator("1"))


def test_conversation_answers_each_reply_with_its_tool_result_as_a_user_turn() -> None:
    case = TASK.heldout(1)[0]
    chat = conversation(case, ["a", "b"], ["result a"])
    assert chat[: len(case.messages)] == case.messages
    assert chat[len(case.messages) :] == (
        {"role": "assistant", "content": "a"},
        {"role": "user", "content": "result a"},
    )


def test_single_turn_tasks_end_after_one_reply_and_score_it_as_their_step() -> None:
    calculator_task = CalculatorTask()
    case = calculator_task.heldout(1)[0]
    reply = calculator(calculator_task._by_id[case.task_id].expression)
    assert calculator_task.max_turns == 1
    assert calculator_task.tool_result(case.task_id, [reply]) is None
    assert calculator_task.step_rewards(case.task_id, [reply]) == [1.0]
