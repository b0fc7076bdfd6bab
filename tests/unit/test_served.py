"""Which version served a call (`served_resources`) and a rollout's versions label."""

from __future__ import annotations

from fulmen.producers._resources import Resources
from fulmen.producers._served import served_resources, versions_label

V1 = Resources(model_version="v1", model_name="lora-v1")
BASE = Resources(model_version="base")
KNOWN = {"lora-v1": "v1", "lora-v2": "v2"}


def _served(requested: Resources, model: str | None) -> str:
    served = served_resources(requested, model, version_of_model=KNOWN, base_version="base")
    return served.model_version


def test_a_known_model_is_its_version() -> None:
    assert _served(V1, "lora-v1") == "v1"
    assert _served(V1, "lora-v2") == "v2"  # another version's model answered


def test_an_unknown_model_while_a_version_is_in_force_is_the_base() -> None:
    assert _served(V1, "SmolLM2-135M") == "base"


def test_without_a_name_to_tell_versions_apart_the_version_in_force_stands() -> None:
    assert _served(V1, None) == "v1"  # the call failed: nothing answered
    assert _served(BASE, "anything") == "base"  # the version in force names no model
    assert _served(Resources(model_version="v9"), "lora-v1") == "v9"


def test_the_rest_of_the_snapshot_is_kept() -> None:
    served = served_resources(
        Resources(model_version="v1", model_name="lora-v1", resources_version="p3"),
        "other",
        version_of_model=KNOWN,
        base_version="base",
    )
    assert (served.model_version, served.resources_version) == ("base", "p3")


def test_a_rollouts_label_lists_each_version_once_in_call_order() -> None:
    assert versions_label([]) == ""
    assert versions_label(["v1", "v1"]) == "v1"
    assert versions_label(["v1", "v2", "v1"]) == "v1+v2"
