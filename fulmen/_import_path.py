"""`module:attribute` paths: how settings and options name user code (a training algorithm,
an agent task, a credit assigner)."""

from __future__ import annotations

import importlib
from typing import TypeVar

T = TypeVar("T")


def import_attribute(path: str) -> object:
    """The object that `path` (`module:attribute`) names.

    Raises:
        ValueError: `path` is not of the form `module:attribute`.
        ImportError: the module does not import, or has no such attribute.
    """
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"{path!r} is not of the form module:attribute")
    module = importlib.import_module(module_name)
    try:
        return getattr(module, attribute)
    except AttributeError as exc:
        raise ImportError(str(exc)) from exc


def instance_at(path: str, kind: type[T]) -> T:
    """The `kind` that `path` (`module:attribute`) names: an instance of it, or a class or
    factory that returns one when called without arguments.

    Raises:
        ValueError: `path` is not of the form `module:attribute`.
        ImportError: the module does not import, or has no such attribute.
        TypeError: what it names is no `kind`, nor gives one when called without arguments.
    """
    target = import_attribute(path)
    if isinstance(target, kind):
        return target
    if not callable(target):
        raise TypeError(f"{path!r} is {type(target).__name__}, not a {kind.__name__}")
    try:
        made = target()
    except TypeError as exc:  # a class or factory that needs arguments
        raise TypeError(f"{path!r} cannot be called without arguments: {exc}") from exc
    if not isinstance(made, kind):
        raise TypeError(f"{path!r} gave {type(made).__name__}, not a {kind.__name__}")
    return made
