"""The release package's errors."""

from fulmen.errors import FulmenError


class ReleaseError(FulmenError):
    """A release could not be decided or published: an unknown target or version, or a
    control topic that cannot be read."""
