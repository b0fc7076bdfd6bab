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

Run as a program, it works forever (or `--rollouts` times) against a policy server, its
events going where the `FULMEN_*` environment says, with the policy server's key in
`OPENAI_API_KEY` (`fulmen up` runs it so, on Kafka)::

    FULMEN_TRANSPORT=kafka python -m examples.openai_calculator --base-url http://127.0.0.1:8000/v1
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import signal
import threading
from collections.abc import Sequence
from typing import Protocol

import openai

import fulmen
from fulmen.tasks import AgentTask, TaskCase, load_task
from fulmen.tasks.calculator import evaluate_expression, parse_tool_call

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


class Solve(Protocol):
    """An agent's rollout function, as `solve` here and in `examples.openai_lookup`."""

    def __call__(
        self,
        client: openai.OpenAI,
        task: AgentTask,
        case: TaskCase,
        *,
        temperature: float = ...,
        max_tokens: int = ...,
        seed: int | None = ...,
    ) -> float | None: ...


def agent_loop(
    solve: Solve,
    argv: Sequence[str] | None,
    *,
    prog: str,
    task: str = "fulmen.tasks:CalculatorTask",
) -> None:
    """An agent's loop: batches of training cases of `--task`, each tried `--attempts`
    times, until `--rollouts` ran (0: until SIGINT/SIGTERM, which end it after the rollout
    in progress). A failed call (say, a version the server has not loaded yet) is reported
    and the loop goes on; every event is flushed before it returns."""
    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument("--base-url", default="http://127.0.0.1:8000/v1")
    parser.add_argument("--task", default=task, help="module:attribute")
    parser.add_argument("--rollouts", type=int, default=0, help="0: until stopped")
    parser.add_argument("--tasks", type=int, default=32, help="Cases per batch.")
    parser.add_argument("--attempts", type=int, default=4, help="Attempts per case.")
    parser.add_argument("--temperature", type=float, default=0.5)
    parser.add_argument("--max-tokens", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0, help="Cases and samples derive from it.")
    args = parser.parse_args(argv)

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, frame: stop.set())
    agent_task = load_task(args.task)
    # The server's key, as the OpenAI client reads it (`fulmen up` sets it); a policy server
    # on loopback without keys takes any.
    client = openai.OpenAI(
        base_url=args.base_url, api_key=os.environ.get("OPENAI_API_KEY", "local")
    )
    done = 0
    for batch in itertools.count():
        cases = agent_task.training(args.tasks, seed=args.seed * 100_000 + batch)
        for case in (c for c in cases for _ in range(args.attempts)):
            if stop.is_set() or (args.rollouts and done >= args.rollouts):
                fulmen.shutdown()
                print(f"{done} rollouts; stopped", flush=True)
                return
            try:
                solve(client, agent_task, case, temperature=args.temperature,
                      max_tokens=args.max_tokens, seed=args.seed * 1_000_000 + done)  # fmt: skip
            except openai.APIError as exc:  # recorded as a failed rollout; go on
                print(f"rollout {done} failed: {exc}", flush=True)
                stop.wait(1.0)
            done += 1
        model = fulmen.resources().model_name or DEFAULT_MODEL
        print(f"{done} rollouts; asking for {model}", flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    agent_loop(solve, argv, prog="python -m examples.openai_calculator")


if __name__ == "__main__":
    main()
