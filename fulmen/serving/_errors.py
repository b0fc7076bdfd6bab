"""The serving package's exceptions; each knows its OpenAI error shape and HTTP status."""

from __future__ import annotations

from pathlib import Path

from fulmen.errors import FulmenError

__all__ = ["InvalidRequestError", "ModelNotFoundError", "PathNotAllowedError", "ServingError"]


class ServingError(FulmenError):
    """A request the policy server refuses. ``status`` is the HTTP status, ``error_type``,
    ``param`` and ``code`` fill OpenAI's error body ``{"error": {message, type, param, code}}``."""

    status = 500
    error_type = "internal_error"

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


class InvalidRequestError(ServingError):
    """The request is malformed, asks for something this server does not do (``n`` > 1, a
    penalty), or exceeds the model's context; HTTP 400."""

    status = 400
    error_type = "invalid_request_error"


class ModelNotFoundError(ServingError):
    """No model, adapter or version of that name is loaded; HTTP 404 with OpenAI's
    ``model_not_found`` code."""

    status = 404
    error_type = "invalid_request_error"

    def __init__(self, name: str, *, what: str = "model") -> None:
        super().__init__(
            f"The {what} `{name}` does not exist.", param="model", code="model_not_found"
        )
        self.name = name


class PathNotAllowedError(ServingError):
    """A load request names a path outside the server's model roots (after resolving
    symlinks and `..`); HTTP 403."""

    status = 403
    error_type = "permission_error"

    def __init__(self, path: str, roots: list[Path], *, param: str) -> None:
        listed = ", ".join(str(root) for root in roots)
        super().__init__(
            f"{path} is outside the directories this server loads from ({listed}); "
            "FULMEN_SERVE_MODEL_ROOTS lists them",
            param=param,
            code="path_not_allowed",
        )
