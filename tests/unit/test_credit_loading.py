"""Credit assigners named in settings: built-in names and `module:attribute` paths."""

from __future__ import annotations

import pytest

from fulmen.streams import (
    CreditLoadError,
    DiscountedReturn,
    EpisodeRewards,
    WorkerSettings,
    load_credit_assigner,
)


def test_built_in_names() -> None:
    assigner = load_credit_assigner("discounted", gamma=0.5)
    assert isinstance(assigner, DiscountedReturn)
    assert assigner.gamma == 0.5
    assert load_credit_assigner("final").name == "final"
    assert load_credit_assigner("per_call").name == "per_call"


def test_import_path_of_a_class() -> None:
    assigner = load_credit_assigner("examples.credit.length_penalty:LengthPenalty")
    assert assigner.name == "length_penalty(budget=24,penalty=0.02)"
    assert assigner.assign([], EpisodeRewards(final=1.0, by_span={}, by_source={})) == []


@pytest.mark.parametrize(
    "name", ["best", "examples.credit.length_penalty:Missing", "fulmen.streams:EpisodeRewards"]
)
def test_bad_names_are_refused(name: str) -> None:
    with pytest.raises(CreditLoadError):
        load_credit_assigner(name)


def test_worker_settings_take_an_import_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FULMEN_WORKER_CREDIT", "examples.credit.length_penalty:LengthPenalty")
    assert WorkerSettings().policy().credit.name.startswith("length_penalty")
