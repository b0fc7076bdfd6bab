"""The dashboard's errors."""

from __future__ import annotations

from fulmen.errors import FulmenError


class DashboardError(FulmenError):
    """Base class of the dashboard's errors."""


class BadFilter(DashboardError, ValueError):
    """A page was asked for with query parameters it cannot use; the message says which and
    why, and is shown to the user with HTTP 400."""
