"""`step` and `tool`: one decorator records a function call as a span of the rollout."""

from __future__ import annotations

import contextlib
import functools
import inspect
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, ParamSpec, Protocol, TypeVar, cast, overload

from fulmen.producers._context import current_span_id, new_span_id, to_json
from fulmen.producers._spans import emit_span, parent_of_new_span
from fulmen.schemas import ToolCall

P = ParamSpec("P")
R = TypeVar("R")
StepKind = Literal["tool", "step"]


class Decorator(Protocol):
    """What `@tool(...)` and `@step(...)` return: a signature-preserving decorator."""

    def __call__(self, func: Callable[P, R], /) -> Callable[P, R]: ...


@dataclass
class _Outcome:
    result: Any = None


@contextlib.contextmanager
def _span_scope(
    kind: StepKind, name: str, arguments: Callable[[], dict[str, Any]]
) -> Iterator[_Outcome]:
    """Nest a span under the current one for the duration of the block (no-op outside a rollout)."""
    outcome = _Outcome()
    active, parent = parent_of_new_span()
    if active is None:
        yield outcome
        return
    span_id, start = new_span_id(), time.time_ns()
    token = current_span_id.set(span_id)
    error: str | None = None
    try:
        yield outcome
    except BaseException as exc:
        error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        current_span_id.reset(token)
        tool_call = None
        if kind == "tool":
            result = "null" if error else to_json(outcome.result)
            tool_call = ToolCall(name=name, arguments=to_json(arguments()), result=result)
        emit_span(
            active,
            name=f"execute_tool {name}" if kind == "tool" else name,
            span_id=span_id,
            parent_span_id=parent,
            start_ns=start,
            end_ns=time.time_ns(),
            error=error,
            tool=tool_call,
        )


def _record(kind: StepKind, name: str | None) -> Decorator:
    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        span_name = name or func.__name__
        signature = inspect.signature(func)

        def arguments_of(args: Any, kwargs: Any) -> Callable[[], dict[str, Any]]:
            return lambda: dict(signature.bind_partial(*args, **kwargs).arguments)

        if inspect.iscoroutinefunction(func):
            async_func = cast("Callable[P, Awaitable[Any]]", func)

            @functools.wraps(func)
            async def run_async(*args: P.args, **kwargs: P.kwargs) -> Any:
                with _span_scope(kind, span_name, arguments_of(args, kwargs)) as outcome:
                    outcome.result = await async_func(*args, **kwargs)
                return outcome.result

            return cast("Callable[P, R]", run_async)

        @functools.wraps(func)
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            with _span_scope(kind, span_name, arguments_of(args, kwargs)) as outcome:
                outcome.result = func(*args, **kwargs)
            return cast("R", outcome.result)

        return run

    return decorate


@overload
def tool(func: Callable[P, R], /) -> Callable[P, R]: ...
@overload
def tool(*, name: str | None = None) -> Decorator: ...
def tool(
    func: Callable[P, R] | None = None, /, *, name: str | None = None
) -> Callable[P, R] | Decorator:
    """Record each call as an `execute_tool` span (arguments and result as JSON)."""
    decorate: Decorator = _record("tool", name)
    return decorate if func is None else decorate(func)


@overload
def step(func: Callable[P, R], /) -> Callable[P, R]: ...
@overload
def step(*, name: str | None = None) -> Decorator: ...
def step(
    func: Callable[P, R] | None = None, /, *, name: str | None = None
) -> Callable[P, R] | Decorator:
    """Record each call as a custom step span; spans made inside it nest under it."""
    decorate: Decorator = _record("step", name)
    return decorate if func is None else decorate(func)
