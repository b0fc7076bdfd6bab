"""Reusing a parent's held-out score: only from the same evaluation."""

from __future__ import annotations

from fulmen.trainers._gate import GateSettings, heldout_fingerprint, known_score

TASK = "fulmen.tasks:CalculatorTask"


def test_a_parent_gated_on_the_same_evaluation_keeps_its_score() -> None:
    settings = GateSettings(heldout_tasks=50, max_new_tokens=40)
    fingerprint = heldout_fingerprint("fulmen.tasks:CalculatorTask", settings)
    parent = {"heldout_reward": 0.42, "heldout_fingerprint": fingerprint}
    assert known_score(parent, fingerprint) == 0.42


def test_a_parent_scored_on_another_evaluation_is_evaluated_again() -> None:
    settings = GateSettings(heldout_tasks=50, max_new_tokens=40)
    fingerprint = heldout_fingerprint("fulmen.tasks:CalculatorTask", settings)
    others = [
        heldout_fingerprint("fulmen.tasks:OtherTask", settings),
        heldout_fingerprint("fulmen.tasks:CalculatorTask", GateSettings(heldout_tasks=100)),
        heldout_fingerprint(
            "fulmen.tasks:CalculatorTask", GateSettings(heldout_tasks=50, max_new_tokens=48)
        ),
    ]
    assert fingerprint not in others
    for other in others:
        assert (
            known_score({"heldout_reward": 0.42, "heldout_fingerprint": other}, fingerprint) is None
        )
    assert known_score({"heldout_reward": 0.42}, fingerprint) is None  # gated before fingerprints
    assert known_score({}, fingerprint) is None  # the base, or a version never gated
