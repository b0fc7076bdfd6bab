"""Naming a credit assigner in settings: a built-in name or the import path of your own.

`FULMEN_WORKER_CREDIT` (the Faust worker) and `EmbeddedRunner(policy=AssemblyPolicy(credit=
load_credit_assigner(...)))` (the embedded default) take the same names:

- `final`, `discounted` (with `gamma`), `per_call`: Fulmen's own;
- `module:attribute`: a `CreditAssigner` instance, or a class or factory that returns one
  when called without arguments.
"""

from __future__ import annotations

from fulmen._import_path import instance_at
from fulmen.errors import FulmenError
from fulmen.streams._credit import CreditAssigner, DiscountedReturn, FinalReward, PerCallReward


class CreditLoadError(FulmenError):
    """A credit setting that names neither a built-in assigner nor a `CreditAssigner`."""


def load_credit_assigner(name: str, *, gamma: float = 0.95) -> CreditAssigner:
    """The assigner `name` designates (see the module docstring)."""
    if name == "final":
        return FinalReward()
    if name == "discounted":
        return DiscountedReturn(gamma=gamma)
    if name == "per_call":
        return PerCallReward()
    try:
        return instance_at(name, CreditAssigner)  # type: ignore[type-abstract]  # only isinstance-checked
    except ValueError:
        raise CreditLoadError(
            f"credit {name!r} is not final, discounted, per_call or a module:attribute path"
        ) from None
    except ImportError as exc:
        raise CreditLoadError(f"cannot import credit assigner {name!r}: {exc}") from exc
    except TypeError as exc:
        raise CreditLoadError(str(exc)) from exc
