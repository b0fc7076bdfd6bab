"""APO's pure logic: garbage filtering of edits, beam selection, the choice of failing
episodes, and the search itself against fake endpoints."""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

import pytest

from fulmen.store import Snapshot
from fulmen.trainers import (
    ApoSettings,
    Candidate,
    ChatEndpoint,
    EndpointError,
    LoggedCall,
    Window,
    clean_edit,
    optimize_prompt,
    select_beam,
)
from fulmen.trainers._apo import low_reward_examples
from tests.support.tasks import CapitalsTask


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("<prompt>\n  Be brief.\n</prompt>", "Be brief."),
        ("Sure! Here it is: <PROMPT>Be brief.</PROMPT> Hope it helps.", "Be brief."),
        ("<prompt>Be brief.", "Be brief."),  # cut off by max_tokens
        ("```text\nBe brief.\n```", "Be brief."),
        ('"Be brief."', "Be brief."),
        ("  Be brief.  ", "Be brief."),
        ("", None),
        ("<prompt>   </prompt>", None),
        ("```\n```", None),
        ("x" * 51, None),
    ],
)
def test_clean_edit_keeps_the_prompt_and_drops_garbage(reply: str, expected: str | None) -> None:
    assert clean_edit(reply, max_chars=50) == expected


def _c(template: str, score: float, order: int) -> Candidate:
    return Candidate(template=template, score=score, round=0, order=order)


def test_select_beam_keeps_the_best_distinct_templates_ties_to_the_earlier() -> None:
    candidates = [_c("a", 0.5, 0), _c("b", 0.9, 1), _c("c", 0.5, 2), _c("b", 0.9, 3),
                  _c("d", 0.1, 4)]  # fmt: skip
    beam = select_beam(candidates, 3)
    assert [(c.template, c.order) for c in beam] == [("b", 1), ("a", 0), ("c", 2)]
    assert select_beam(candidates, 10)[-1].template == "d"
    assert select_beam(list(reversed(candidates)), 3) == beam


def _window(rewards: Sequence[float]) -> Window:
    calls = tuple(
        LoggedCall(
            rollout_id=f"r{i}", attempt=1, step=0, task_id=f"t{i}", model_version="",
            prompt_ids=(), response_ids=(), logprobs=(), reward=reward,
            prompt=f"question {i} " * 20, response=f"answer {i}",
        )
        for i, reward in enumerate(rewards)
    )  # fmt: skip
    return Window("w", Snapshot(Path("-"), "hash", len(calls)), calls)


def test_low_reward_examples_come_from_the_worst_episodes_deterministically() -> None:
    window = _window([0.9, 0.1, 0.0, 1.0, 0.2, 0.8])
    draw = low_reward_examples(window, 2, rng=random.Random(7), max_chars=30)
    assert len(draw) == 2
    assert {e.task_id for e in draw} <= {"t2", "t1", "t4", "t5"}
    assert all(len(e.prompt) <= 30 and e.prompt.endswith("…") for e in draw)
    assert draw == low_reward_examples(window, 2, rng=random.Random(7), max_chars=30)
    assert len(low_reward_examples(window, 10, rng=random.Random(7), max_chars=30)) == 6


class _Optimizer:
    """Critiques anything; edits are, in turn: garbage, a duplicate, the prompt plus capitals."""

    def __init__(self) -> None:
        self.calls = 0

    def complete(
        self, messages: Sequence[dict[str, str]], *, max_tokens: int, temperature: float,
        seed: int | None,
    ) -> str:  # fmt: skip
        self.calls += 1
        text = messages[-1]["content"]
        if "Explain briefly" in text:
            return "Too few letters."
        current = text.split("<prompt>\n", 1)[1].split("\n</prompt>", 1)[0]
        branch = int(text.split("Write improved system prompt ", 1)[1].split(" ", 1)[0])
        return ["", f"<prompt>{current}</prompt>", f"<prompt>{current} ABC{branch}</prompt>"][
            (branch - 1) % 3
        ]


class _Target:
    """Replies with the system prompt itself, so a prompt's score is its share of capitals."""

    def complete(
        self, messages: Sequence[dict[str, str]], *, max_tokens: int, temperature: float,
        seed: int | None,
    ) -> str:  # fmt: skip
        assert temperature == 0.0
        return messages[0]["content"]


def test_optimize_prompt_keeps_the_best_candidate_and_drops_garbage() -> None:
    settings = ApoSettings(beam_width=2, branch_factor=3, rounds=2, critique_examples=2,
                           eval_tasks=3)  # fmt: skip
    optimizer = _Optimizer()

    result = optimize_prompt(
        "x y", window=_window([0.0, 1.0]), task=CapitalsTask(), optimizer=optimizer,
        target=_Target(), settings=settings,
    )  # fmt: skip

    assert result.start.template == "x y"
    assert result.start.score == 0.0
    assert result.best.template == "x y ABC3 ABC3"
    assert result.best.score > result.start.score
    assert result.best == max(result.beam, key=lambda c: c.score)
    assert len(result.beam) == 2
    # round 1: one parent, 3 edits, 1 kept; round 2: two parents, 6 edits, only
    # "x y ABC3 ABC3" new (the other parent's third edit is "x y ABC3", already seen)
    assert result.scored == 1 + 1 + 1
    assert result.dropped == 2 + 5
    assert optimizer.calls == (1 + 3) + 2 * (1 + 3)
    assert result.metrics()["apo_train_reward"] == result.best.score


def test_optimize_prompt_needs_episodes() -> None:
    with pytest.raises(ValueError, match="empty"):
        optimize_prompt(
            "X", window=_window([]), task=CapitalsTask(), optimizer=_Optimizer(),
            target=_Target(), settings=ApoSettings(),
        )  # fmt: skip


def test_endpoint_failures_are_fulmen_errors() -> None:
    with pytest.raises(EndpointError, match="no model"):
        ChatEndpoint(base_url="http://127.0.0.1:9/v1", model="", api_key="k")
    endpoint = ChatEndpoint(
        base_url="http://127.0.0.1:9/v1", model="m", api_key="k", timeout_s=2, max_retries=0
    )
    with pytest.raises(EndpointError, match=r"m at http://127\.0\.0\.1:9/v1 failed"):
        endpoint.complete([{"role": "user", "content": "hi"}], max_tokens=1, temperature=0,
                          seed=None)  # fmt: skip
