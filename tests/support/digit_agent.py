"""The agent of the trainer-job tests: answers a `DigitTask` case through an OpenAI-compatible
server, with the model of the version in force, and scores its answer."""

from __future__ import annotations

import openai

import fulmen
from tests.support.tasks import DigitTask

TASK = DigitTask()


@fulmen.rollout(task_id=lambda client, task_id, messages, base, seed: task_id)
def answer(
    client: openai.OpenAI, task_id: str, messages: list[dict[str, str]], base: str, seed: int
) -> str:
    reply = client.chat.completions.create(
        model=fulmen.resources().model_name or base,
        messages=messages,  # type: ignore[arg-type]
        max_tokens=8,
        temperature=1.0,
        seed=seed,  # sampled, yet the same traffic every run
    )
    text = reply.choices[0].message.content or ""
    fulmen.emit_reward(TASK.reward(task_id, text))
    return text
