"""The models package's exception."""

from fulmen.errors import FulmenError

__all__ = ["ModelsError"]


class ModelsError(FulmenError):
    """A model directory cannot be built or loaded (a missing source file, a bad path)."""
