"""Which algorithm a job runs: built-ins by name, custom ones by import path, clear errors."""

from __future__ import annotations

import pytest

from fulmen.trainers import Algorithm, AlgorithmLoadError, Apo, Rl, Sft, load_algorithm


def test_builtin_names() -> None:
    assert (load_algorithm("rl"), load_algorithm("sft"), load_algorithm("apo")) == (Rl, Sft, Apo)


def test_a_custom_algorithm_by_import_path() -> None:
    loaded = load_algorithm("examples.algorithms.above_median:AboveMedianCloning")
    assert issubclass(loaded, Algorithm)
    assert loaded.__name__ == "AboveMedianCloning"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("ppo", "neither one of rl, sft, dpo, kto, apo nor module:Class"),
        ("examples.algorithms.nowhere:Thing", "cannot import algorithm"),
        ("examples.algorithms.above_median:Missing", "cannot import algorithm"),
        ("fulmen.trainers:TrainSettings", "is not a subclass of fulmen.trainers.Algorithm"),
    ],
)
def test_bad_names_say_what_is_wrong(name: str, message: str) -> None:
    with pytest.raises(AlgorithmLoadError, match=message):
        load_algorithm(name)
