"""Whole episodes of a multi-turn task on the tiny model: each turn's prompt is the chat so
far (every earlier reply and the tool's answer to it), episodes end when the task says so
and never run past `max_turns`, and the gate's score is the mean of the episodes' rewards."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from fulmen.models import tiny_model_dir
from fulmen.tasks import AgentTask, LookupTask, TaskCase, conversation
from fulmen.trainers import GateSettings
from fulmen.trainers._episodes import run_episodes
from fulmen.trainers._gate import heldout_reward
from fulmen.trainers._generate import prompt_ids

pytestmark = pytest.mark.integration

Tiny = tuple[PreTrainedModel, PreTrainedTokenizerBase]


class Echo(AgentTask):
    """Answers every reply with its length until `max_turns`, except cases whose id says
    they stop after `n` replies; rewards a reply by how many turns it took."""

    name = "echo"
    max_turns = 3

    def heldout(self, count: int) -> Sequence[TaskCase]:
        return [
            TaskCase(f"stop-{1 + i % 3}", ({"role": "user", "content": f"say {i}"},))
            for i in range(count)
        ]

    def training(self, count: int, *, seed: int) -> Sequence[TaskCase]:
        return self.heldout(count)

    def tool_result(self, task_id: str, completions: Sequence[str]) -> str | None:
        if len(completions) >= int(task_id.removeprefix("stop-")):
            return None
        return f"you wrote {len(completions[-1])} characters"

    def reward(self, task_id: str, completion: str) -> float:
        return int(task_id.removeprefix("stop-")) / 3


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Tiny:
    directory: Path = tiny_model_dir(tmp_path_factory.mktemp("tiny"))
    model = AutoModelForCausalLM.from_pretrained(directory).eval()
    return model, AutoTokenizer.from_pretrained(directory)


def test_each_turn_sees_the_chat_so_far_and_episodes_end_when_the_task_says(
    tiny: Tiny,
) -> None:
    model, tokenizer = tiny
    task = Echo()
    cases = task.heldout(6)
    episodes = run_episodes(model, tokenizer, task, cases, max_new_tokens=8,
                            temperature=1.0, batch_size=4, seed=3)  # fmt: skip
    assert [len(e.replies) for e in episodes] == [1, 2, 3, 1, 2, 3]
    for episode in episodes:
        assert len(episode.results) == len(episode.replies) - 1
        for turn, reply in enumerate(episode.replies):
            chat = conversation(episode.case, episode.completions[:turn], episode.results[:turn])
            assert list(reply.prompt_ids) == prompt_ids(tokenizer, chat)
        assert episode.step_rewards == (0.0,) * (len(episode.replies) - 1) + (episode.reward,)
    finished: list[int] = []
    run_episodes(model, tokenizer, task, cases, max_new_tokens=4,
                 on_done=finished.append)  # fmt: skip
    assert finished == [2, 2, 2]  # two episodes end at each turn


def test_the_gate_scores_whole_episodes(tiny: Tiny) -> None:
    model, tokenizer = tiny
    task = Echo()
    score = heldout_reward(model, tokenizer, task, task.heldout(6),
                           settings=GateSettings(max_new_tokens=4))  # fmt: skip
    assert score == pytest.approx((1 + 2 + 3) / 9)


def test_lookup_episodes_stop_at_the_turn_limit(tiny: Tiny) -> None:
    model, tokenizer = tiny
    task = LookupTask()
    episodes = run_episodes(model, tokenizer, task, task.heldout(8), max_new_tokens=12,
                            temperature=1.0, seed=1)  # fmt: skip
    for episode in episodes:
        assert 1 <= len(episode.replies) <= task.max_turns
        assert episode.reward == task.reward(episode.case.task_id, episode.completions[-1])
        assert list(episode.step_rewards) == task.step_rewards(
            episode.case.task_id, list(episode.completions)
        )
