"""The calculator agent on AutoGen (`autogen-agentchat`), instrumented through AutoGen's
OpenTelemetry spans.

One `AssistantAgent` with a `calculator` tool; it returns after its tool call (no reflection
turn). A fresh agent per rollout starts from the task's worked example. Fulmen adds
`instrument_autogen()`, the rollout decorator and the reward::

    instrument_autogen()
    client = model_client("http://127.0.0.1:8000/v1")
    task = CalculatorTask()
    for case in task.training(32, seed=0):
        asyncio.run(solve(client, task, case))
"""

from __future__ import annotations

import json

from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.messages import TextMessage, ToolCallRequestEvent
from autogen_core.model_context import UnboundedChatCompletionContext
from autogen_core.models import AssistantMessage, ModelFamily, ModelInfo, UserMessage
from autogen_ext.models.openai import OpenAIChatCompletionClient

import fulmen
from examples._calculator_agent import (
    DEFAULT_MODEL,
    SYSTEM_PROMPT,
    as_completion,
    calculate,
    example_exchange,
)
from fulmen.trainers import AgentTask, TaskCase

MODEL_INFO = ModelInfo(
    vision=False,
    function_calling=True,
    json_output=False,
    family=ModelFamily.UNKNOWN,
    structured_output=False,
)
"""What AutoGen needs to know of a model it has no entry for (any local model)."""


def calculator(expression: str) -> float | str:
    """Evaluate an arithmetic expression of numbers, + - * / and parentheses."""
    return calculate(expression)


def model_client(base_url: str, *, model: str = DEFAULT_MODEL) -> OpenAIChatCompletionClient:
    """AutoGen's OpenAI client for an OpenAI-compatible server (`fulmen serve`, vLLM)."""
    return OpenAIChatCompletionClient(
        model=model,
        base_url=base_url,
        api_key="local",
        model_info=MODEL_INFO,
        temperature=0.5,
        max_tokens=40,
    )


def build_agent(client: OpenAIChatCompletionClient) -> AssistantAgent:
    """An agent whose context starts with the task's worked example."""
    example = example_exchange()
    context = UnboundedChatCompletionContext(
        initial_messages=[
            UserMessage(content=example[0]["content"], source="user"),
            AssistantMessage(content=example[1]["content"], source="calculator"),
        ]
    )
    return AssistantAgent(
        "calculator",
        model_client=client,
        tools=[calculator],
        system_message=SYSTEM_PROMPT,
        model_context=context,
        reflect_on_tool_use=False,
    )


@fulmen.rollout(task_id=lambda client, task, case: case.task_id)
async def solve(client: OpenAIChatCompletionClient, task: AgentTask, case: TaskCase) -> float:
    """One attempt at `case`; emits and returns the task's reward."""
    result = await build_agent(client).run(task=case.messages[-1]["content"])
    completion = ""
    for message in result.messages:
        if isinstance(message, ToolCallRequestEvent) and message.content:  # a native call
            arguments = json.loads(message.content[0].arguments or "{}")
            completion = as_completion(str(arguments.get("expression", "")))
        elif isinstance(message, TextMessage) and message.source == "calculator":
            completion = message.content  # the task's text format
    reward = task.reward(case.task_id, completion)
    fulmen.emit_reward(reward)
    return reward
