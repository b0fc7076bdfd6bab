"""`rollout`: opens a rollout around a function or block, and finishes it with its status."""

from __future__ import annotations

import asyncio
import functools
import inspect
import math
import numbers
import time
from collections.abc import Awaitable, Callable, Collection
from contextvars import Token
from types import TracebackType
from typing import Any, ParamSpec, TypedDict, TypeVar, Unpack, cast, overload

import uuid_utils
from pydantic import BaseModel

from fulmen.producers._context import (
    ActiveRollout,
    current_rollout,
    current_span_id,
    new_span_id,
    new_trace_id,
    to_json,
)
from fulmen.producers._global import get_producer
from fulmen.producers._resources import routing_key
from fulmen.producers._rewards import RewardError, emit_reward
from fulmen.producers._served import rollout_meta
from fulmen.producers._spans import emit_span
from fulmen.schemas import USER_ID_LABEL, EventMeta, RolloutEvent, RolloutStatus

P = ParamSpec("P")
R = TypeVar("R")

TaskId = str | Callable[..., str]
RewardFn = Callable[..., float]
"""Scores a call from its return value: `reward(result, *args, **kwargs)`."""


class RolloutOptions(TypedDict, total=False):
    """What a rollout is opened with; every key is optional."""

    task_id: TaskId
    """The task (rollouts of one task form a group); a callable gets the decorated
    function's arguments. Default: empty."""
    rollout_id: str
    """Default: a new UUIDv7. Pass it to continue or retry a known rollout."""
    attempt: int
    """1 for the first attempt (default), incremented on retries."""
    input: Any
    """The task input, recorded as JSON; as a decorator, a callable gets the function's
    arguments and returns it (`input=lambda question, expected: question`). Default: the
    decorated function's arguments that are plain data (JSON values and pydantic models;
    clients and other objects are left out), less those named in `exclude_input`."""
    exclude_input: Collection[str]
    """Decorator only: arguments never recorded in the default input (the ground truth, a
    user's secret)."""
    agent_name: str
    """The agent this rollout trains; default: the producer's `agent_name`."""
    metadata: dict[str, str]
    """Free-form labels on the lifecycle events."""
    user_id: str
    """The end user the rollout acts for, recorded as the `user_id` label of `metadata`:
    `LightningStore.forget_user` (`fulmen store forget --user`) deletes a user's rollouts by
    it. Not redacted (it is how the user is found); use a pseudonymous id."""
    reward: RewardFn
    """Decorator only: scores each call from what it returned. Called as
    `reward(result, *args, **kwargs)` — the return value, then the decorated function's
    arguments as passed — inside the rollout, after the function returned; its value (a
    finite real number; `True`/`False` count as 1/0) is emitted as the rollout's `reward`,
    like `emit_reward(value)`. Not called when the function raises. Rewards the function
    emitted itself are kept, and add up with it by name. A reward function that raises or
    returns anything else raises `RewardError` to the caller, and the rollout finishes
    `failed` with that error."""


class Rollout:
    """A rollout scope: `with`, `async with`, or a decorator of sync and async functions.

    On entry it emits `started` (with the task id and input); on exit the root span of the
    trace and `finished` with status `succeeded`, `failed` (an exception, re-raised) or
    `cancelled` (cancellation or KeyboardInterrupt). As a decorator, each call is a new
    rollout; a callable `task_id` receives the function's arguments, and a `reward`
    callable the return value and the arguments.
    """

    def __init__(self, **options: Unpack[RolloutOptions]) -> None:
        self._options = options
        self._task_id = options.get("task_id", "")
        self._rollout_id = options.get("rollout_id")
        self._attempt = options.get("attempt", 1)
        self._input = options.get("input")
        self._agent_name = options.get("agent_name")
        self._metadata = options.get("metadata", {})
        if "user_id" in options:
            self._metadata = {**self._metadata, USER_ID_LABEL: options["user_id"]}
        self._active: ActiveRollout | None = None
        self._tokens: (
            tuple[Token[ActiveRollout | None], Token[str | None], Token[str | None]] | None
        ) = None
        self._start_ns = 0

    @property
    def rollout_id(self) -> str:
        """The id of the rollout in progress (inside `with`)."""
        if self._active is None:
            raise RuntimeError("rollout_id is known once the rollout has started")
        return self._active.rollout_id

    def __call__(self, func: Callable[P, R]) -> Callable[P, R]:
        reward = self._options.get("reward")
        if reward is not None and (
            inspect.isgeneratorfunction(func) or inspect.isasyncgenfunction(func)
        ):
            raise TypeError(
                f"rollout(reward=...) cannot score generator {func.__qualname__}: it has no "
                "single return value; call fulmen.emit_reward inside it instead"
            )
        if inspect.iscoroutinefunction(func):
            async_func = cast("Callable[P, Awaitable[Any]]", func)

            @functools.wraps(func)
            async def run_async(*args: P.args, **kwargs: P.kwargs) -> Any:
                async with self._for_call(func, args, kwargs):
                    result = await async_func(*args, **kwargs)
                    if reward is not None:
                        _emit_returned_reward(reward, func, result, args, kwargs)
                    return result

            return cast("Callable[P, R]", run_async)

        @functools.wraps(func)
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            with self._for_call(func, args, kwargs):
                result = func(*args, **kwargs)
                if reward is not None:
                    _emit_returned_reward(reward, func, result, args, kwargs)
                return result

        return run

    def _for_call(self, func: Callable[..., Any], args: Any, kwargs: Any) -> Rollout:
        task_id = self._task_id(*args, **kwargs) if callable(self._task_id) else self._task_id
        call_input = self._input
        if callable(call_input):
            call_input = call_input(*args, **kwargs)
        elif call_input is None:
            bound = inspect.signature(func).bind_partial(*args, **kwargs)
            excluded = set(self._options.get("exclude_input", ()))
            call_input = {
                name: value
                for name, value in bound.arguments.items()
                if name not in excluded and _is_plain_data(value)
            }
        options = self._options.copy()
        options.pop("reward", None)  # the decorator scores the call, not the scope
        options.pop("exclude_input", None)
        options["task_id"] = task_id
        options["input"] = call_input
        return Rollout(**options)

    def __enter__(self) -> Rollout:
        self._start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._finish(exc)

    async def __aenter__(self) -> Rollout:
        self._start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._finish(exc)

    def _start(self) -> None:
        if self._active is not None:
            raise RuntimeError("a Rollout object is entered once; use a new one per rollout")
        if "reward" in self._options:
            raise TypeError(
                "rollout(reward=...) scores a decorated function's return value; "
                "in a `with` block call fulmen.emit_reward instead"
            )
        producer = get_producer()
        task_id = self._task_id if isinstance(self._task_id, str) else ""
        self._active = ActiveRollout(
            rollout_id=self._rollout_id or str(uuid_utils.uuid7()),
            attempt=self._attempt,
            task_id=task_id,
            trace_id=new_trace_id(),
            root_span_id=new_span_id(),
            agent_name=self._agent_name,
        )
        self._tokens = (
            current_rollout.set(self._active),
            current_span_id.set(self._active.root_span_id),
            routing_key.set(self._routing_key(producer.settings.producer.routing_key)),
        )
        self._start_ns = time.time_ns()
        producer.emit(
            RolloutEvent(
                meta=self._meta(),
                phase="started",
                task_id=task_id,
                trace_id=self._active.trace_id,
                input=None if self._input is None else to_json(self._input),
                metadata=self._metadata,
            )
        )

    def _finish(self, exc: BaseException | None) -> None:
        active = self._active
        assert active is not None
        assert self._tokens is not None
        status, error = _status_of(exc)
        emit_span(
            active,
            name="fulmen.rollout",
            span_id=active.root_span_id,
            parent_span_id=None,
            start_ns=self._start_ns,
            end_ns=time.time_ns(),
            error=error,
        )
        get_producer().emit(
            RolloutEvent(
                meta=self._meta(),
                phase="finished",
                task_id=active.task_id,
                trace_id=active.trace_id,
                status=status,
                error=error,
                metadata=self._metadata,
            )
        )
        rollout_token, span_token, key_token = self._tokens
        routing_key.reset(key_token)
        current_span_id.reset(span_token)
        current_rollout.reset(rollout_token)

    def _routing_key(self, preferred: str) -> str:
        """What assigns this rollout to a canary's arm: `preferred`, else the next of user
        id, task id and rollout id that it has."""
        assert self._active is not None
        keys = {
            "user_id": self._metadata.get(USER_ID_LABEL, ""),
            "task_id": self._active.task_id,
            "rollout_id": self._active.rollout_id,
        }
        order = list(keys)
        return next(keys[name] for name in order[order.index(preferred) :] if keys[name])

    def _meta(self) -> EventMeta:
        assert self._active is not None
        return rollout_meta(get_producer(), self._active)


def _is_plain_data(value: object) -> bool:
    """JSON values (nested), and pydantic models: what a task input can be recorded as."""
    if value is None or isinstance(value, (str, int, float, bool, BaseModel)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_is_plain_data(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_plain_data(v) for k, v in value.items())
    return False


@overload
def rollout(func: Callable[P, R], /) -> Callable[P, R]: ...
@overload
def rollout(**options: Unpack[RolloutOptions]) -> Rollout: ...
def rollout(
    func: Callable[P, R] | None = None, /, **options: Unpack[RolloutOptions]
) -> Callable[P, R] | Rollout:
    """Open a rollout: `@rollout`, `@rollout(task_id=...)`, or `with rollout(...) as r:`."""
    scope = Rollout(**options)
    return scope if func is None else scope(func)


def _emit_returned_reward(
    reward: RewardFn, func: Callable[..., Any], result: Any, args: Any, kwargs: Any
) -> None:
    """Score the call from its result, inside its rollout; any failure is a `RewardError`."""
    where = f"rollout(reward=...) of {func.__qualname__}"
    try:
        value: object = reward(result, *args, **kwargs)  # checked: callers are untyped
    except Exception as exc:
        raise RewardError(f"{where} raised {type(exc).__name__}: {exc}") from exc
    if not isinstance(value, numbers.Real):
        raise RewardError(f"{where} returned {value!r}, not a number")
    if not math.isfinite(value):
        raise RewardError(f"{where} returned {value!r}, not a finite number")
    emit_reward(float(value))


def _status_of(exc: BaseException | None) -> tuple[RolloutStatus, str | None]:
    if exc is None:
        return "succeeded", None
    error = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, (asyncio.CancelledError, KeyboardInterrupt)):
        return "cancelled", error
    return "failed", error
