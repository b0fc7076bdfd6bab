"""A multi-turn tool task: look prices up, then compute the bill with the calculator.

Each case is a shop with its own price list, which the agent cannot see: it must call
`{"tool": "lookup", "item": "…"}` once per item the question names, read the price from the
tool's reply (the next user turn), then answer with `{"tool": "calculator", "expression":
"…"}` built from those prices. A one-item question takes 2 LLM calls, a two-item one 3, and
a failed lookup (an item the shop does not sell) costs a turn; the episode ends at the
calculator call, at a reply that is no tool call, or after `MAX_TURNS` replies.

Rewards: the episode's is 1 when the calculator's value is the bill, else 0. Step rewards
score each reply alone: 1 for a lookup of an item the question needs and not yet looked up,
1 for the right calculator call, 0 otherwise — the per-step signal credit assignment can use.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass

from fulmen.tasks._task import AgentTask, TaskCase
from fulmen.tasks._tool_calls import tool_calls
from fulmen.tasks.calculator import evaluate_expression

SYSTEM_PROMPT = (
    "You answer questions about a shop's prices with two tools. To get the price of an item, "
    'reply {"tool": "lookup", "item": "<item>"}. When you know every price you need, reply '
    '{"tool": "calculator", "expression": "<arithmetic expression>"}. Reply with exactly one '
    "JSON object and nothing else."
)
EXAMPLE = (
    {"role": "user", "content": "How much do 3 pens cost?"},
    {"role": "assistant", "content": '{"tool": "lookup", "item": "pen"}'},
    {"role": "user", "content": "lookup result: a pen costs 4"},
    {"role": "assistant", "content": '{"tool": "calculator", "expression": "3 * 4"}'},
)
MAX_TURNS = 4

_ITEMS = ("apple", "book", "candle", "cup", "hat", "kite", "lamp", "mug", "plate", "sock")
_STOCK = 5
"""Items each shop sells."""


def item_key(item: str) -> str:
    """How the shop reads an item the model asked for: trimmed, lower case, singular."""
    return item.strip().lower().removesuffix("s")


@dataclass(frozen=True, slots=True)
class Order:
    """One question: the shop's price list and the quantities asked for."""

    prices: tuple[tuple[str, int], ...]
    quantities: tuple[tuple[str, int], ...]

    @property
    def question(self) -> str:
        parts = [f"{n} {item}s" for item, n in self.quantities]
        return f"How much do {' and '.join(parts)} cost?"

    @property
    def bill(self) -> int:
        price = dict(self.prices)
        return sum(n * price[item] for item, n in self.quantities)

    @property
    def task_id(self) -> str:
        return "lookup-" + hashlib.sha256(repr(self).encode()).hexdigest()[:12]

    def lookup(self, item: str) -> str:
        """The lookup tool's reply for `item`."""
        key = item_key(item)
        price = dict(self.prices).get(key)
        if price is None:
            sold = ", ".join(name for name, _ in self.prices)
            return f"lookup result: no {item!r} here; this shop sells {sold}"
        return f"lookup result: a {key} costs {price}"


def orders(count: int, *, seed: int, two_item_share: float = 0.4) -> list[Order]:
    """`count` distinct orders drawn deterministically from `seed`; about `two_item_share`
    of them ask for two items (3 LLM calls), the rest for one (2 calls)."""
    rng = random.Random(seed)
    seen: set[Order] = set()
    out: list[Order] = []
    while len(out) < count:
        stock = rng.sample(_ITEMS, _STOCK)
        prices = tuple((item, rng.randint(2, 15)) for item in stock)
        asked = rng.sample(stock, 2 if rng.random() < two_item_share else 1)
        order = Order(prices, tuple((item, rng.randint(2, 9)) for item in asked))
        if order not in seen:
            seen.add(order)
            out.append(order)
    return out


def _call(completion: str) -> dict[str, object] | None:
    return next(tool_calls(completion), None)


class LookupTask(AgentTask):
    """Price questions answered by lookups then one calculator call, over 2 to 4 turns;
    held-out orders come from their own seed and never appear in training traffic."""

    name = "lookup"
    max_turns = MAX_TURNS

    HELDOUT_POOL = 1000

    def __init__(self, *, heldout_seed: int = 20_000) -> None:
        self._heldout = orders(self.HELDOUT_POOL, seed=heldout_seed)
        self._heldout_ids = frozenset(o.task_id for o in self._heldout)
        self._by_id = {o.task_id: o for o in self._heldout}

    def heldout(self, count: int) -> Sequence[TaskCase]:
        if count > self.HELDOUT_POOL:
            raise ValueError(f"at most {self.HELDOUT_POOL} held-out lookup tasks")
        return [self._case(o) for o in self._heldout[:count]]

    def training(self, count: int, *, seed: int) -> Sequence[TaskCase]:
        drawn = orders(count + self.HELDOUT_POOL, seed=seed)
        fresh = [o for o in drawn if o.task_id not in self._heldout_ids]
        return [self._case(o) for o in fresh[:count]]

    def order(self, task_id: str) -> Order:
        order = self._by_id.get(task_id)
        if order is None:
            raise KeyError(f"unknown lookup task {task_id!r}")
        return order

    def tool_result(self, task_id: str, completions: Sequence[str]) -> str | None:
        order = self.order(task_id)
        call = _call(completions[-1]) if completions else None
        if call is None or call.get("tool") != "lookup" or len(completions) >= self.max_turns:
            return None
        item = call.get("item")
        return order.lookup(item) if isinstance(item, str) else "lookup result: no item given"

    def reward(self, task_id: str, completion: str) -> float:
        order = self.order(task_id)
        call = _call(completion)
        if call is None or call.get("tool") != "calculator":
            return 0.0
        expression = call.get("expression")
        try:
            value = evaluate_expression(expression) if isinstance(expression, str) else None
        except ValueError:
            return 0.0
        return 1.0 if value is not None and abs(value - order.bill) < 1e-6 else 0.0

    def step_rewards(self, task_id: str, completions: Sequence[str]) -> list[float]:
        needed = {item for item, _ in self.order(task_id).quantities}
        found: set[str] = set()
        rewards: list[float] = []
        for completion in completions:
            call = _call(completion)
            item = call.get("item") if call is not None and call.get("tool") == "lookup" else None
            key = item_key(item) if isinstance(item, str) else None
            if key is not None and key in needed - found:
                found.add(key)
                rewards.append(1.0)
            else:
                rewards.append(self.reward(task_id, completion))
        return rewards

    def _case(self, order: Order) -> TaskCase:
        self._by_id[order.task_id] = order
        messages = ({"role": "system", "content": SYSTEM_PROMPT}, *EXAMPLE)
        return TaskCase(order.task_id, (*messages, {"role": "user", "content": order.question}))
