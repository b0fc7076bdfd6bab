"""`module:attribute` paths: how settings and options name user code (a training algorithm,
an agent task, a credit assigner)."""

from __future__ import annotations

import importlib


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
