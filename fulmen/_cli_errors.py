"""What the `fulmen` command prints for the errors a user can fix: one line with the fix,
not a traceback. Everything else still raises."""

from __future__ import annotations

from typing import Any

import typer
from pydantic import ValidationError
from pydantic_settings import BaseSettings, SettingsError
from typer._click import Context  # typer's own copy of click: what TyperGroup is typed with
from typer.core import TyperGroup

from fulmen.errors import FulmenError

USER_ERROR = 2
"""The exit status of an error the user can fix (settings, a store or broker to reach)."""


class FriendlyErrors(TyperGroup):
    """The `fulmen` command group: a Fulmen error or a bad `FULMEN_*` setting raised by any
    subcommand ends it with `error: <what to do>` on stderr and exit status 2."""

    def invoke(self, ctx: Context) -> Any:
        try:
            return super().invoke(ctx)
        except (FulmenError, ValidationError, SettingsError) as exc:
            line = explain(exc)
            if line is None:
                raise
            typer.echo(f"error: {line}", err=True)
            raise typer.Exit(USER_ERROR) from None


def explain(exc: BaseException) -> str | None:
    """The one line that tells a user how to fix `exc`, or None for an error that is not
    theirs to fix (a bug: it keeps its traceback)."""
    if isinstance(exc, FulmenError):
        return " ".join(str(exc).split())
    if isinstance(exc, SettingsError):
        cause = f": {exc.__cause__}" if exc.__cause__ is not None else ""
        return f"bad FULMEN_* setting: {exc}{cause}"
    if isinstance(exc, ValidationError):
        return _bad_setting(exc)
    return None


def _bad_setting(exc: ValidationError) -> str | None:
    settings = _settings_class(exc.title)
    if settings is None:
        return None
    prefix = str(settings.model_config.get("env_prefix") or "")
    delimiter = str(settings.model_config.get("env_nested_delimiter") or "__")
    errors = exc.errors(include_url=False)
    first = errors[0]
    name = (prefix + delimiter.join(str(part) for part in first["loc"])).upper()
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"bad setting {name}={first.get('input')!r}: {first['msg']}{more}"


def _settings_class(name: str) -> type[BaseSettings] | None:
    pending: list[type[BaseSettings]] = [BaseSettings]
    while pending:
        cls = pending.pop()
        if cls.__name__ == name and cls is not BaseSettings:
            return cls
        pending.extend(cls.__subclasses__())
    return None
