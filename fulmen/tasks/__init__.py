"""Agent tasks with programmatic rewards: the contract a trainer and its agent share
(`AgentTask`, `TaskCase`, `load_task`), and the tasks that ship with Fulmen, on which the
demo's and the benchmarks' agents train. Light: no torch, no transformers."""

from fulmen.tasks._task import AgentTask, TaskCase, TaskLoadError, load_task
from fulmen.tasks.calculator import CalculatorTask, Problem, evaluate_expression

__all__ = [
    "AgentTask",
    "CalculatorTask",
    "Problem",
    "TaskCase",
    "TaskLoadError",
    "evaluate_expression",
    "load_task",
]
