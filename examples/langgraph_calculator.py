"""The calculator agent as a LangGraph graph, instrumented with Fulmen's callback handler.

Two nodes: `think` asks the model (LangChain's `ChatOpenAI`, tools bound), `act` runs the
calculator call it made through a LangChain tool. Fulmen adds the rollout decorator, the
handler in the graph's config and the reward::

    model = ChatOpenAI(base_url="http://127.0.0.1:8000/v1", api_key="local", model=…)
    graph = build_graph(model)
    task = CalculatorTask()
    for case in task.training(32, seed=0):
        solve(graph, task, case)

Then `fulmen train --agent calculator --algo rl` trains on the episodes (the task is
`fulmen.tasks:CalculatorTask`, the default).
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict

from langchain_core.messages import AIMessage, AnyMessage, SystemMessage, ToolMessage
from langchain_core.messages.utils import convert_to_messages
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

import fulmen
from examples._calculator_agent import SYSTEM_PROMPT, as_completion, calculate, example_exchange
from fulmen.producers.integrations import FulmenCallbackHandler
from fulmen.tasks.calculator import parse_tool_call
from fulmen.trainers import AgentTask, TaskCase

HANDLER = FulmenCallbackHandler()
"""One handler serves every rollout of the process."""


@tool
def calculator(expression: str) -> float | str:
    """Evaluate an arithmetic expression of numbers, + - * / and parentheses."""
    return calculate(expression)


class State(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], operator.add]
    expression: str | None


def build_graph(model: ChatOpenAI) -> CompiledStateGraph[Any, Any, Any, Any]:
    """think (the model, with the calculator bound) → act (the calculator call) → end."""
    bound = model.bind_tools([calculator])

    def think(state: State) -> State:
        return {"messages": [bound.invoke(state["messages"])]}

    def act(state: State) -> State:
        reply = state["messages"][-1]
        assert isinstance(reply, AIMessage)
        if reply.tool_calls:  # a native tool call
            call = reply.tool_calls[0]
        else:  # the task's text format
            expression = parse_tool_call(str(reply.content))
            if expression is None:
                return {"expression": None}
            call = {"name": "calculator", "args": {"expression": expression}, "id": "text-0",
                    "type": "tool_call"}  # fmt: skip
        result = calculator.invoke(call)
        assert isinstance(result, ToolMessage)
        return {"messages": [result], "expression": str(call["args"].get("expression", ""))}

    graph = StateGraph(State)
    graph.add_node("think", think)
    graph.add_node("act", act)
    graph.add_edge(START, "think")
    graph.add_edge("think", "act")
    graph.add_edge("act", END)
    return graph.compile()


@fulmen.rollout(task_id=lambda graph, task, case: case.task_id)
def solve(graph: CompiledStateGraph[Any, Any, Any, Any], task: AgentTask, case: TaskCase) -> float:
    """One attempt at `case`; emits and returns the task's reward."""
    messages = [SystemMessage(SYSTEM_PROMPT), *convert_to_messages(example_exchange())]
    question = case.messages[-1]["content"]
    state = graph.invoke(
        {"messages": [*messages, *convert_to_messages([("user", question)])]},
        config={"callbacks": [HANDLER]},
    )
    expression = state.get("expression")
    reward = task.reward(case.task_id, as_completion(expression)) if expression else 0.0
    fulmen.emit_reward(reward)
    return reward
