"""Which version served a call: the truth behind an LLM span's `model_version`.

An event is stamped with the version in force when it is emitted, but a call is served by
whatever model the server answered with. A model version names its model (`model_name`,
e.g. the LoRA adapter a policy server loaded), so the model a response names maps back to
the version that published it. A rollout whose calls were served by several versions (it
straddled a swap) carries all of them, joined by `VERSION_SEPARATOR` in call order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from fulmen.producers._resources import Resources
from fulmen.schemas import VERSION_SEPARATOR

if TYPE_CHECKING:
    from fulmen.producers._context import ActiveRollout
    from fulmen.producers._producer import Producer
    from fulmen.schemas import EventMeta


def served_resources(
    requested: Resources,
    response_model: str | None,
    *,
    version_of_model: dict[str, str],
    base_version: str,
) -> Resources:
    """The snapshot that actually served a call made while `requested` was in force.

    - The response names a model a known version published: that version.
    - The response names no model, or the version in force names none (nothing to tell
      versions apart by): the version in force, as before.
    - Otherwise the server answered with a model no version published: the base
      deployment, `base_version` (the settings' `model_version`).
    """
    if response_model is None or requested.model_name is None:
        return requested
    version = version_of_model.get(response_model, base_version)
    if version == requested.model_version:
        return requested
    return replace(requested, model_version=version)


def versions_label(served: Sequence[str]) -> str:
    """One rollout's model versions, in the order its calls used them, each once."""
    return VERSION_SEPARATOR.join(dict.fromkeys(served))


def rollout_meta(producer: Producer, active: ActiveRollout) -> EventMeta:
    """An envelope for an event of the rollout `active` (its end, its reward): stamped with
    the versions that served its calls so far, else with the versions in force."""
    return producer.meta(
        active.rollout_id,
        active.attempt,
        agent_name=active.agent_name,
        model_version=versions_label(active.served) or None,
    )
