"""Whole episodes of a task against a policy, in batches: every open episode's next turn is
generated together, each reply answered by the task's tool (`AgentTask.tool_result`), until
each episode ends or reaches the task's `max_turns`. What the gate scores, and what the
benchmarks' in-process agents sample."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from peft import PeftModel
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from fulmen.tasks._task import AgentTask, TaskCase, conversation
from fulmen.trainers._generate import Generation, generate


@dataclass(frozen=True, slots=True)
class EpisodeRun:
    """One episode: the model's replies in order, the tool results between them, and the
    task's rewards for it."""

    case: TaskCase
    replies: tuple[Generation, ...]
    results: tuple[str, ...]
    reward: float
    step_rewards: tuple[float, ...]

    @property
    def completions(self) -> tuple[str, ...]:
        return tuple(reply.text for reply in self.replies)


def run_episodes(
    model: PreTrainedModel | PeftModel,
    tokenizer: PreTrainedTokenizerBase,
    task: AgentTask,
    cases: Sequence[TaskCase],
    *,
    max_new_tokens: int,
    temperature: float = 0.0,
    batch_size: int = 32,
    seed: int = 0,
    on_done: Callable[[int], None] | None = None,
) -> list[EpisodeRun]:
    """Run every case to its end; `temperature` 0 is greedy. `on_done(n)` is told as n more
    episodes finish (progress bars)."""
    replies: list[list[Generation]] = [[] for _ in cases]
    results: list[list[str]] = [[] for _ in cases]
    open_ = list(range(len(cases)))
    for turn in range(task.max_turns):
        if not open_:
            break
        chats = [conversation(cases[i], [g.text for g in replies[i]], results[i]) for i in open_]
        single = task.max_turns == 1  # progress per generated batch; else per finished turn
        generated = generate(
            model, tokenizer, chats, max_new_tokens=max_new_tokens, temperature=temperature,
            batch_size=batch_size, seed=seed * task.max_turns + turn,
            on_batch=on_done if single else None,
        )  # fmt: skip
        still_open: list[int] = []
        for index, reply in zip(open_, generated, strict=True):
            replies[index].append(reply)
            result = task.tool_result(cases[index].task_id, [g.text for g in replies[index]])
            if result is not None:
                results[index].append(result)
                still_open.append(index)
        if on_done is not None and not single:
            on_done(len(open_) - len(still_open))
        open_ = still_open
    return [_scored(task, case, replies[i], results[i]) for i, case in enumerate(cases)]


def _scored(
    task: AgentTask, case: TaskCase, replies: list[Generation], results: list[str]
) -> EpisodeRun:
    texts = [reply.text for reply in replies]
    return EpisodeRun(
        case=case,
        replies=tuple(replies),
        results=tuple(results),
        reward=task.reward(case.task_id, texts[-1]),
        step_rewards=tuple(task.step_rewards(case.task_id, texts)),
    )
