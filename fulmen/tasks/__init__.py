"""Agent tasks with programmatic rewards: the contract a trainer and its agent share
(`AgentTask`, `TaskCase`, `load_task`), and the tasks that ship with Fulmen (a one-call
calculator task, a multi-turn lookup task), on which the
demo's and the benchmarks' agents train. Light: no torch, no transformers."""

from fulmen.tasks._task import AgentTask, TaskCase, TaskLoadError, conversation, load_task
from fulmen.tasks.calculator import CalculatorTask, Problem, evaluate_expression
from fulmen.tasks.lookup import LookupTask, Order

__all__ = [
    "AgentTask",
    "CalculatorTask",
    "LookupTask",
    "Order",
    "Problem",
    "TaskCase",
    "TaskLoadError",
    "conversation",
    "evaluate_expression",
    "load_task",
]
