"""Two cooperating agents, of which only one is trained: a `solver` that makes the
calculator call and a `checker` that reviews it before the answer is given.

Each agent's turns are rollouts of its own name (`fulmen.rollout(agent_name=…)`), so the
store holds both and a trainer picks one by name::

    fulmen train --agent solver --algo rl     # the checker is never trained

The checker runs on a fixed model (no `fulmen.resources()` lookup), the solver follows the
versions published for it. Both are plain OpenAI-client agents; any framework's agents
split the same way. The solver's reward is the task's; the checker's is whether its verdict
was right, recorded for analysis.
"""

from __future__ import annotations

from dataclasses import dataclass

import openai

import fulmen
from examples._calculator_agent import DEFAULT_MODEL, calculate
from fulmen.tasks.calculator import parse_tool_call
from fulmen.trainers import AgentTask, TaskCase

SOLVER = "solver"
CHECKER = "checker"
CHECKER_PROMPT = (
    "You check a calculator call made for an arithmetic word problem. Reply with exactly "
    "one word: yes if the expression answers the problem, no if it does not."
)


@dataclass(frozen=True, slots=True)
class Outcome:
    solver_reward: float
    checker_approved: bool


@fulmen.tool
def calculator(expression: str) -> float | str:
    """The solver's tool: plain arithmetic."""
    return calculate(expression)


@fulmen.rollout(agent_name=SOLVER, task_id=lambda client, task, case, **_: case.task_id)
def solve(client: openai.OpenAI, task: AgentTask, case: TaskCase, *, model: str) -> str:
    """The trained agent: the task's prompt, the model in force for `solver` (else `model`)."""
    reply = client.chat.completions.create(
        model=fulmen.resources().model_name or model,
        messages=list(case.messages),  # type: ignore[arg-type]  # role/content dicts
        temperature=0.5,
        max_tokens=40,
    )
    text = reply.choices[0].message.content or ""
    expression = parse_tool_call(text)
    if expression is not None:
        calculator(expression)
    fulmen.emit_reward(task.reward(case.task_id, text))
    return text


@fulmen.rollout(agent_name=CHECKER, task_id=lambda client, task, case, proposal, **_: case.task_id)
def check(
    client: openai.OpenAI, task: AgentTask, case: TaskCase, proposal: str, *, model: str
) -> bool:
    """The fixed agent: approves or rejects the solver's call; scored on being right."""
    reply = client.chat.completions.create(
        model=model,
        messages=[
            {"role": "system", "content": CHECKER_PROMPT},
            {"role": "user", "content": f"{case.messages[-1]['content']}\nCall: {proposal}"},
        ],
        temperature=0.0,
        max_tokens=4,
    )
    approved = (reply.choices[0].message.content or "").strip().lower().startswith("yes")
    correct = task.reward(case.task_id, proposal) == 1.0
    fulmen.emit_reward(1.0 if approved == correct else 0.0)
    return approved


def cooperate(
    client: openai.OpenAI, task: AgentTask, case: TaskCase, *, model: str = DEFAULT_MODEL
) -> Outcome:
    """The solver proposes, the checker reviews; one rollout each. `model`: the base model
    both ask for (the solver only until a version is published for it)."""
    proposal = solve(client, task, case, model=model)
    approved = check(client, task, case, proposal, model=model)
    return Outcome(task.reward(case.task_id, proposal), approved)
