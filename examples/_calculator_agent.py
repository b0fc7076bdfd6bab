"""What every framework example of the calculator agent shares: the tool, the chat it
starts from, and the task's reward for the calculator call it made.

The model calls the calculator either natively (an OpenAI tool call, from servers that parse
tool calls, e.g. vLLM with a tool parser) or, as the calculator task teaches it, by replying
with `{"tool": "calculator", "expression": "…"}` as text (SmolLM2 on `fulmen serve`, which
does not parse tool calls). Either way the reward is the task's own, on the call as text, so
`fulmen train --task fulmen.tasks:CalculatorTask` trains what the agent is scored on.
"""

from __future__ import annotations

import json

from fulmen.tasks.calculator import (
    EXAMPLE_ANSWER,
    EXAMPLE_QUESTION,
    SYSTEM_PROMPT,
    evaluate_expression,
)

DEFAULT_MODEL = "smollm2-135m-instruct"
"""The model asked for before a version is published: `fulmen serve`'s base model."""

TOOL_DESCRIPTION = "Evaluate an arithmetic expression of numbers, + - * / and parentheses."


def calculate(expression: str) -> float | str:
    """The calculator: the value, or the error as text (a bad expression is a failed call)."""
    try:
        return evaluate_expression(expression)
    except ValueError as exc:
        return f"error: {exc}"


def as_completion(expression: str) -> str:
    """A native tool call's expression as the text the task's reward scores."""
    return json.dumps({"tool": "calculator", "expression": expression})


def example_exchange() -> list[dict[str, str]]:
    """The worked example the task's prompt shows, before the question."""
    return [
        {"role": "user", "content": EXAMPLE_QUESTION},
        {"role": "assistant", "content": EXAMPLE_ANSWER},
    ]


__all__ = [
    "DEFAULT_MODEL",
    "SYSTEM_PROMPT",
    "TOOL_DESCRIPTION",
    "as_completion",
    "calculate",
    "example_exchange",
]
