"""The root of Fulmen's exceptions; each package subclasses it."""


class FulmenError(Exception):
    """Base class of every error Fulmen raises on purpose."""
