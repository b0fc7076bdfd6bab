"""A tool-using agent on the plain OpenAI client, instrumented with Fulmen's three lines.

The agent answers arithmetic word problems: the model replies with a calculator call as
JSON, the agent runs the calculator, and the task's checker scores the reply. Fulmen adds
the decorator on the rollout, the one on the tool, and the reward; the OpenAI calls inside
are captured on their own (with token ids and logprobs when the server returns them)::

    client = openai.OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="local")
    task = CalculatorTask()
    for case in task.training(32, seed=0):
        solve(client, task, case)

The model it asks for is the version in force (`fulmen.resources().model_name`), so a
version published by a trainer is used from the next call on, without a restart.
"""

from __future__ import annotations

import contextlib

import openai

import fulmen
from fulmen.tasks.calculator import evaluate_expression, parse_tool_call
from fulmen.trainers import AgentTask, TaskCase

DEFAULT_MODEL = "smollm2-135m-instruct"
"""What the agent asks for before any version is published: the base model, by the name
`fulmen serve` gives SmolLM2-135M-Instruct."""


@fulmen.tool
def calculator(expression: str) -> float:
    """The agent's one tool: plain arithmetic (+ - * / and parentheses)."""
    return evaluate_expression(expression)


@fulmen.rollout(task_id=lambda client, task, case, **options: case.task_id)
def solve(
    client: openai.OpenAI,
    task: AgentTask,
    case: TaskCase,
    *,
    temperature: float = 0.5,
    max_tokens: int = 40,
    seed: int | None = None,
) -> float | None:
    """One attempt at `case`: ask the model, run the calculator call it makes, report the
    task's reward. Returns the calculator's answer (None when the reply made no valid call).
    `seed` makes the sampled reply reproducible."""
    reply = client.chat.completions.create(
        model=fulmen.resources().model_name or DEFAULT_MODEL,
        messages=list(case.messages),  # type: ignore[arg-type]  # role/content dicts
        temperature=temperature,
        max_tokens=max_tokens,
        seed=seed,
    )
    text = reply.choices[0].message.content or ""
    answer = None
    expression = parse_tool_call(text)
    if expression is not None:
        with contextlib.suppress(ValueError):  # a bad expression is a failed tool call
            answer = calculator(expression)
    fulmen.emit_reward(task.reward(case.task_id, text))
    return answer
