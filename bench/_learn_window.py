"""One round of in-process agent traffic as a trainer window: the policy runs whole
episodes of a task (sampled at the agent's temperature, several attempts per task, with
the raw logprobs an agent would log), and each episode's rewards are credited to its calls
by one of the stream stage's credit assigners, as the worker would.

The data path (agent → store → window) is exercised by the tests; here the window is built
in process so that the benchmark measures learning, not plumbing."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from peft import PeftModel
from transformers import PreTrainedTokenizerBase

from fulmen.schemas import Span
from fulmen.store import Snapshot
from fulmen.streams import CreditAssigner, EpisodeRewards
from fulmen.tasks import AgentTask, TaskCase, conversation
from fulmen.trainers import EpisodeRun, LoggedCall, Window, run_episodes


def credited(episode: EpisodeRun, credit: CreditAssigner) -> list[float]:
    """`credit`'s reward for each call of `episode`, given the episode's final reward and
    its step rewards (one per call, on the call's span) as the agent emits them. The
    built-in assigners read only the calls' span ids, so the spans carry nothing else."""
    span_ids = [f"{index:016x}" for index in range(len(episode.replies))]
    spans = [Span.model_construct(span_id=span_id) for span_id in span_ids]
    by_span = dict(zip(span_ids, episode.step_rewards, strict=True))
    rewards = EpisodeRewards(
        final=episode.reward, by_span=by_span, by_source={"programmatic": by_span}
    )
    return credit.assign(spans, rewards)


def sampled_window(
    model: PeftModel,
    tokenizer: PreTrainedTokenizerBase,
    task: AgentTask,
    cases: Sequence[TaskCase],
    *,
    attempts: int,
    temperature: float,
    seed: int,
    version: str,
    credit: CreditAssigner,
) -> tuple[Window, list[EpisodeRun]]:
    """Each case tried `attempts` times by the current policy, as a window of credited
    calls, with the episodes themselves."""
    repeated = [case for case in cases for _ in range(attempts)]
    model.eval()
    episodes = run_episodes(
        model, tokenizer, task, repeated, max_new_tokens=40, temperature=temperature,
        batch_size=64, seed=seed,
    )  # fmt: skip
    calls: list[LoggedCall] = []
    for index, episode in enumerate(episodes):
        rewards = credited(episode, credit)
        completions = episode.completions
        for step, (reply, reward) in enumerate(zip(episode.replies, rewards, strict=True)):
            chat = conversation(episode.case, completions[:step], episode.results[:step])
            calls.append(
                LoggedCall(
                    rollout_id=f"{version}-{index}", attempt=1, step=step,
                    task_id=episode.case.task_id, model_version=version,
                    prompt_ids=reply.prompt_ids, response_ids=reply.response_ids,
                    logprobs=reply.logprobs, reward=reward, prompt=json.dumps(chat),
                    response=reply.text,
                )
            )  # fmt: skip
    window_id = f"round-{seed}"
    return Window(window_id, Snapshot(Path("-"), window_id, len(calls)), tuple(calls)), episodes
