"""Which `Algorithm` a job runs: a built-in by name, or any subclass by import path."""

from __future__ import annotations

from fulmen._import_path import import_attribute
from fulmen.errors import FulmenError
from fulmen.trainers._algorithm import Algorithm
from fulmen.trainers._apo_algorithm import Apo
from fulmen.trainers._model_algorithms import Rl, Sft
from fulmen.trainers._preference_algorithms import Dpo, Kto

BUILTIN: dict[str, type[Algorithm]] = {"rl": Rl, "sft": Sft, "dpo": Dpo, "kto": Kto, "apo": Apo}


class AlgorithmLoadError(FulmenError):
    """An `--algo` that is neither a built-in name nor `module:Class` of an `Algorithm`."""


def load_algorithm(name: str) -> type[Algorithm]:
    """The built-in algorithm `name` (`rl`, `sft`, `dpo`, `kto`, `apo`), or the `Algorithm`
    subclass that `module:Class` names."""
    if name in BUILTIN:
        return BUILTIN[name]
    try:
        target = import_attribute(name)
    except ValueError:
        raise AlgorithmLoadError(
            f"algorithm {name!r} is neither one of {', '.join(BUILTIN)} nor module:Class"
        ) from None
    except ImportError as exc:
        raise AlgorithmLoadError(f"cannot import algorithm {name!r}: {exc}") from exc
    if not (isinstance(target, type) and issubclass(target, Algorithm)):
        raise AlgorithmLoadError(f"{name!r} is not a subclass of fulmen.trainers.Algorithm")
    return target
