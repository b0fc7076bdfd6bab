"""A multi-turn tool-using agent on the plain OpenAI client, instrumented with Fulmen's lines.

The agent answers price questions (`fulmen.tasks.lookup`): the model looks items up with
the shop's lookup tool, one turn each, reads the prices from the tool's replies, then
answers with a calculator call. Fulmen adds the decorators on the rollout and the tools, one
reward per step on the LLM call that made it (`span_id=fulmen.last_llm_span_id()`), and
the episode's reward; the OpenAI calls are captured on their own::

    client = openai.OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="local")
    task = LookupTask()
    for case in task.training(32, seed=0):
        solve(client, task, case)

The stream worker's credit assigner decides what the trainer sees (docs/trainers.md):
`final` gives every call the episode's reward, `per_call` each call its step reward,
`discounted` the discounted sum of the step rewards from that call on, the episode's
reward counted at the last call. The store's `episodes.reward` sums them all (a perfect
episode scores 3 or 4 there); the gate scores the task's reward alone, 0 or 1.

Run as a program it works like `examples.openai_calculator` (same options)::

    FULMEN_TRANSPORT=kafka python -m examples.openai_lookup --base-url http://127.0.0.1:8000/v1
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import openai

import fulmen
from examples.openai_calculator import DEFAULT_MODEL, agent_loop, calculator
from fulmen.tasks import AgentTask, TaskCase, conversation
from fulmen.tasks.calculator import parse_tool_call


@fulmen.tool
def shop(task: AgentTask, task_id: str, completions: Sequence[str]) -> str | None:
    """The shop's answer to the last reply, as the task gives it: a looked-up price, or None
    when the reply ends the episode (the calculator call, no tool call, the last turn)."""
    return task.tool_result(task_id, completions)


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
    """One episode of `case`: up to `task.max_turns` model calls, each lookup answered by
    the tool, ended by the calculator call (whose value it returns; None when the episode
    made no valid one). Each call gets its step reward, the episode the task's reward."""
    completions: list[str] = []
    results: list[str] = []
    span_ids: list[str | None] = []
    while len(completions) < task.max_turns:
        reply = client.chat.completions.create(
            model=fulmen.resources().model_name or DEFAULT_MODEL,
            messages=list(conversation(case, completions, results)),  # type: ignore[arg-type]
            temperature=temperature,
            max_tokens=max_tokens,
            seed=None if seed is None else seed * task.max_turns + len(completions),
        )
        text = reply.choices[0].message.content or ""
        completions.append(text)
        span_ids.append(fulmen.last_llm_span_id())
        result = shop(task, case.task_id, completions)
        if result is None:
            break
        results.append(result)
    for span_id, value in zip(span_ids, task.step_rewards(case.task_id, completions), strict=True):
        if span_id is not None:
            fulmen.emit_reward(value, span_id=span_id)
    fulmen.emit_reward(task.reward(case.task_id, completions[-1]))
    expression = parse_tool_call(completions[-1])
    if expression is None:
        return None
    with contextlib.suppress(ValueError):  # a bad expression is a failed tool call
        return calculator(expression)
    return None


def main(argv: Sequence[str] | None = None) -> None:
    """The agent's loop on `--task` (default: the lookup task), as the calculator's."""
    agent_loop(solve, argv, prog="python -m examples.openai_lookup", task="fulmen.tasks:LookupTask")


if __name__ == "__main__":
    main()
