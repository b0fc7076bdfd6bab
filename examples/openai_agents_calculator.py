"""The calculator agent on the OpenAI Agents SDK, instrumented with Fulmen's tracing
processor.

One `Agent` with a `calculator` function tool that stops at its first tool call (the tool's
result is the answer). Fulmen adds the processor, the rollout decorator and the reward::

    use_fulmen_tracing()
    agent = build_agent(AsyncOpenAI(base_url="http://127.0.0.1:8000/v1", api_key="local"))
    task = CalculatorTask()
    for case in task.training(32, seed=0):
        asyncio.run(solve(agent, task, case))

The SDK runs on the Chat Completions API here (what `fulmen serve` and vLLM speak, and what
the SDK's OpenAI capture records, token ids included).
"""

from __future__ import annotations

import json

from agents import (
    Agent,
    ModelSettings,
    OpenAIChatCompletionsModel,
    Runner,
    ToolCallItem,
    TResponseInputItem,
    function_tool,
    set_trace_processors,
)
from openai import AsyncOpenAI
from openai.types.responses import ResponseFunctionToolCall

import fulmen
from examples._calculator_agent import (
    DEFAULT_MODEL,
    SYSTEM_PROMPT,
    as_completion,
    calculate,
    example_exchange,
)
from fulmen.producers.integrations import FulmenTracingProcessor
from fulmen.trainers import AgentTask, TaskCase


@function_tool
def calculator(expression: str) -> float | str:
    """Evaluate an arithmetic expression of numbers, + - * / and parentheses.

    Args:
        expression: The arithmetic expression, e.g. "12 - 5".
    """
    return calculate(expression)


def use_fulmen_tracing() -> None:
    """Send the SDK's spans to Fulmen only (`add_trace_processor` keeps OpenAI's exporter
    too; here nothing leaves the machine)."""
    set_trace_processors([FulmenTracingProcessor()])


def build_agent(client: AsyncOpenAI, *, model: str = DEFAULT_MODEL) -> Agent[None]:
    """The agent: the task's instructions, the calculator, stop at the first tool call."""
    return Agent(
        name="calculator",
        instructions=SYSTEM_PROMPT,
        tools=[calculator],
        tool_use_behavior="stop_on_first_tool",
        model=OpenAIChatCompletionsModel(model=model, openai_client=client),
        model_settings=ModelSettings(temperature=0.5, max_tokens=40),
    )


@fulmen.rollout(task_id=lambda agent, task, case: case.task_id)
async def solve(agent: Agent[None], task: AgentTask, case: TaskCase) -> float:
    """One attempt at `case`; emits and returns the task's reward."""
    example = example_exchange()
    chat: list[TResponseInputItem] = [
        {"role": "user", "content": example[0]["content"]},
        {"role": "assistant", "content": example[1]["content"]},
        {"role": "user", "content": case.messages[-1]["content"]},
    ]
    result = await Runner.run(agent, chat, max_turns=2)
    calls = [
        item.raw_item
        for item in result.new_items
        if isinstance(item, ToolCallItem) and isinstance(item.raw_item, ResponseFunctionToolCall)
    ]
    if calls:  # a native tool call: score its expression
        arguments = json.loads(calls[0].arguments or "{}")
        completion = as_completion(str(arguments.get("expression", "")))
    else:  # the task's text format: score the reply
        completion = str(result.final_output)
    reward = task.reward(case.task_id, completion)
    fulmen.emit_reward(reward)
    return reward
