"""What `@fulmen.rollout` records as a task's input: plain data by default, or the choice."""

from __future__ import annotations

import json

from pydantic import BaseModel

import fulmen
from fulmen.producers import InProcessBus
from fulmen.schemas import RolloutEvent
from tests.support.sdk import emitted


class Client:
    """Stands for an SDK client: an object that is not data."""


class Case(BaseModel):
    question: str
    expected: str


def _recorded_input(bus: InProcessBus) -> object:
    (started,) = [e for e in emitted(bus) if isinstance(e, RolloutEvent) and e.phase == "started"]
    assert started.input is not None
    return json.loads(started.input)


def test_objects_are_left_out_of_the_default_input(sdk_bus: InProcessBus) -> None:
    @fulmen.rollout
    def solve(client: Client, question: str, tags: list[str], options: dict[str, int]) -> str:
        return "4"

    solve(Client(), "2+2", ["easy"], {"max_tokens": 8})
    assert _recorded_input(sdk_bus) == {
        "question": "2+2",
        "tags": ["easy"],
        "options": {"max_tokens": 8},
    }


def test_named_arguments_are_excluded(sdk_bus: InProcessBus) -> None:
    @fulmen.rollout(exclude_input=["expected"])
    def solve(question: str, expected: str) -> str:
        return expected

    solve("2+2", "4")
    assert _recorded_input(sdk_bus) == {"question": "2+2"}


def test_the_input_can_be_chosen_from_the_arguments(sdk_bus: InProcessBus) -> None:
    @fulmen.rollout(input=lambda client, case: case.question)
    def solve(client: Client, case: Case) -> str:
        return case.expected

    solve(Client(), Case(question="2+2", expected="4"))
    assert _recorded_input(sdk_bus) == "2+2"


def test_models_are_recorded_as_their_fields(sdk_bus: InProcessBus) -> None:
    @fulmen.rollout
    def solve(case: Case, self_check: object = None) -> str:
        return case.expected

    solve(Case(question="2+2", expected="4"), self_check=Client())
    assert _recorded_input(sdk_bus) == {"case": {"question": "2+2", "expected": "4"}}
