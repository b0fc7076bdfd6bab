"""A tool-calling task: an arithmetic word problem answered with one calculator call.

The agent must reply with exactly one JSON object, `{"tool": "calculator", "expression":
"…"}`; the reward is 1 when the expression evaluates to the problem's answer, else 0. The
system prompt shows one example exchange. SmolLM2-135M-Instruct solves about a fifth of
these greedily before training, mostly by failing the format, which is what training fixes.
"""

from __future__ import annotations

import ast
import hashlib
import operator
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from fulmen.tasks._task import AgentTask, TaskCase
from fulmen.tasks._tool_calls import tool_calls

SYSTEM_PROMPT = (
    "You solve arithmetic word problems with a calculator tool. Reply with exactly one JSON "
    'object of the form {"tool": "calculator", "expression": "<arithmetic expression>"} '
    "and nothing else."
)
EXAMPLE_QUESTION = "A baker has 12 rolls and sells 5 of them. How many rolls are left?"
EXAMPLE_ANSWER = '{"tool": "calculator", "expression": "12 - 5"}'

_NAMES = ("Ana", "Ben", "Chen", "Dara", "Eli", "Fay", "Gus", "Hana", "Ivo", "Jun", "Kai", "Lea")
_THINGS = ("apples", "books", "coins", "stamps", "marbles", "pencils", "cards", "shells")


@dataclass(frozen=True, slots=True)
class Problem:
    """One word problem and the arithmetic that answers it."""

    question: str
    expression: str

    @property
    def answer(self) -> float:
        return evaluate_expression(self.expression)

    @property
    def task_id(self) -> str:
        return "calc-" + hashlib.sha256(self.question.encode()).hexdigest()[:12]


def _add(rng: random.Random, name: str, thing: str) -> Problem:
    a, b = rng.randint(2, 60), rng.randint(2, 60)
    q = f"{name} has {a} {thing} and gets {b} more. How many {thing} does {name} have now?"
    return Problem(q, f"{a} + {b}")


def _subtract(rng: random.Random, name: str, thing: str) -> Problem:
    a = rng.randint(20, 90)
    b = rng.randint(2, a - 1)
    q = f"{name} had {a} {thing} and gave away {b}. How many {thing} are left?"
    return Problem(q, f"{a} - {b}")


def _multiply(rng: random.Random, name: str, thing: str) -> Problem:
    a, b = rng.randint(2, 12), rng.randint(2, 15)
    q = f"{name} buys {a} boxes with {b} {thing} in each box. How many {thing} is that?"
    return Problem(q, f"{a} * {b}")


def _divide(rng: random.Random, name: str, thing: str) -> Problem:
    b, share = rng.randint(2, 9), rng.randint(2, 12)
    q = f"{name} shares {b * share} {thing} equally among {b} friends. How many does each get?"
    return Problem(q, f"{b * share} / {b}")


def _two_step(rng: random.Random, name: str, thing: str) -> Problem:
    a, b, c = rng.randint(2, 9), rng.randint(2, 9), rng.randint(1, 20)
    q = f"{name} has {a} bags of {b} {thing} and finds {c} more. How many {thing} in total?"
    return Problem(q, f"{a} * {b} + {c}")


_KINDS: tuple[Callable[[random.Random, str, str], Problem], ...] = (
    _add,
    _subtract,
    _multiply,
    _divide,
    _two_step,
)


def problems(count: int, *, seed: int) -> list[Problem]:
    """`count` distinct problems drawn deterministically from `seed`."""
    rng = random.Random(seed)
    seen: set[str] = set()
    out: list[Problem] = []
    while len(out) < count:
        problem = rng.choice(_KINDS)(rng, rng.choice(_NAMES), rng.choice(_THINGS))
        if problem.question not in seen:
            seen.add(problem.question)
            out.append(problem)
    return out


_OPERATORS: dict[type[ast.operator], Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}


def evaluate_expression(expression: str) -> float:
    """The value of an arithmetic expression of numbers, + - * / and parentheses.
    Raises ValueError for anything else (names, calls, powers) and for division by zero."""

    def walk(node: ast.expr) -> float:
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            return float(node.value)  # type: ignore[arg-type]  # narrowed to int | float above
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -walk(node.operand)
        if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
            try:
                return _OPERATORS[type(node.op)](walk(node.left), walk(node.right))
            except ZeroDivisionError as exc:
                raise ValueError("division by zero") from exc
        raise ValueError(f"not plain arithmetic: {ast.dump(node)[:60]}")

    if len(expression) > 200:
        raise ValueError("expression too long")
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"not an expression: {expression!r}") from exc
    return walk(tree.body)


def parse_tool_call(completion: str) -> str | None:
    """The calculator expression of the first JSON calculator call in `completion`, if any."""
    for call in tool_calls(completion):
        if call.get("tool") == "calculator":
            expression = call.get("expression")
            return expression if isinstance(expression, str) else None
    return None


def messages_for(question: str) -> tuple[dict[str, str], ...]:
    """The chat the agent sends: the tool instructions, one worked exchange, the question."""
    return (
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": EXAMPLE_QUESTION},
        {"role": "assistant", "content": EXAMPLE_ANSWER},
        {"role": "user", "content": question},
    )


class CalculatorTask(AgentTask):
    """Word problems answered by a calculator tool call; held-out problems come from their
    own seed and never appear in training traffic."""

    name = "calculator"

    HELDOUT_POOL = 1000

    def __init__(self, *, heldout_seed: int = 10_000) -> None:
        self._heldout = problems(self.HELDOUT_POOL, seed=heldout_seed)
        self._heldout_ids = frozenset(p.task_id for p in self._heldout)
        self._by_id = {p.task_id: p for p in self._heldout}

    def heldout(self, count: int) -> Sequence[TaskCase]:
        if count > self.HELDOUT_POOL:
            raise ValueError(f"at most {self.HELDOUT_POOL} held-out calculator tasks")
        return [self._case(p) for p in self._heldout[:count]]

    def training(self, count: int, *, seed: int) -> Sequence[TaskCase]:
        drawn = problems(count + self.HELDOUT_POOL, seed=seed)
        fresh = [p for p in drawn if p.task_id not in self._heldout_ids]
        return [self._case(p) for p in fresh[:count]]

    def reward(self, task_id: str, completion: str) -> float:
        problem = self._by_id.get(task_id)
        if problem is None:
            raise KeyError(f"unknown calculator task {task_id!r}")
        expression = parse_tool_call(completion)
        if expression is None:
            return 0.0
        try:
            return 1.0 if abs(evaluate_expression(expression) - problem.answer) < 1e-6 else 0.0
        except ValueError:
            return 0.0

    def _case(self, problem: Problem) -> TaskCase:
        self._by_id[problem.task_id] = problem
        return TaskCase(task_id=problem.task_id, messages=messages_for(problem.question))
