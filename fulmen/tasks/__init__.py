"""Agent tasks with programmatic rewards that ship with Fulmen: the demo's and the
benchmarks' agents train on them."""

from fulmen.tasks.calculator import CalculatorTask, Problem, evaluate_expression

__all__ = ["CalculatorTask", "Problem", "evaluate_expression"]
