"""APO: automatic prompt optimization by textual gradients, against any OpenAI-compatible
endpoint.

Starting from the system prompt in force, each round asks an optimizer model, for every
candidate in the beam, to critique the candidate on low-reward logged episodes (the
"textual gradient") and then to write `branch_factor` edited prompts. Every new candidate is
scored by replaying the task's training cases with it as the system message against the
target endpoint (greedy) and the task's own reward; the best `beam_width` survive the round.
Nothing here runs the agent's code or trains weights.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from pydantic import SecretStr
from rich.progress import Progress

from fulmen.tasks._task import AgentTask, TaskCase, conversation
from fulmen.trainers._window import Window


@dataclass(frozen=True, slots=True)
class ApoSettings:
    """`FULMEN_TRAIN_APO__<FIELD>` in the environment (e.g. `FULMEN_TRAIN_APO__OPTIMIZER_MODEL`)."""

    optimizer_base_url: str = "http://localhost:8000/v1"
    """The OpenAI-compatible endpoint that writes critiques and edits."""
    optimizer_model: str = ""
    """Required: the optimizer endpoint's model name."""
    optimizer_api_key: SecretStr = field(default_factory=lambda: SecretStr("EMPTY"))
    target_base_url: str = "http://localhost:8000/v1"
    """The endpoint serving the agent's policy: candidates are scored (and gated) on it."""
    target_model: str = ""
    """Required: the model name the agent's calls use on the target endpoint."""
    target_api_key: SecretStr = field(default_factory=lambda: SecretStr("EMPTY"))
    beam_width: int = 4
    branch_factor: int = 4
    """Edited prompts asked of the optimizer per beam candidate and round."""
    rounds: int = 3
    critique_examples: int = 4
    """Low-reward logged episodes shown to the optimizer per critique."""
    eval_tasks: int = 20
    """Training cases each candidate is scored on."""
    max_tokens: int = 512
    """Completion limit of the optimizer's critiques and edits."""
    score_max_tokens: int = 64
    """Completion limit of the target when scoring and gating (greedy)."""
    temperature: float = 0.0
    """The optimizer's; 0 makes a run reproducible on a deterministic endpoint."""
    seed: int = 0
    """Seeds the choice of examples, the training cases and each request (`seed`)."""
    max_example_chars: int = 1500
    """Each logged prompt and response shown to the optimizer is cut to this length."""
    max_template_chars: int = 4000
    """Edits longer than this are dropped as garbage."""


class Completer(Protocol):
    """A chat endpoint (`ChatEndpoint`, or a fake in tests)."""

    def complete(
        self,
        messages: Sequence[dict[str, str]],
        *,
        max_tokens: int,
        temperature: float,
        seed: int | None,
    ) -> str: ...


@dataclass(frozen=True, slots=True)
class Candidate:
    """A scored system prompt. `order` is when it was generated (0: the prompt in force),
    the tie-breaker that keeps beam selection deterministic."""

    template: str
    score: float
    round: int
    order: int


@dataclass(frozen=True, slots=True)
class Example:
    """A logged episode shown to the optimizer: its last call's prompt and response."""

    task_id: str
    reward: float
    prompt: str
    response: str


@dataclass(frozen=True, slots=True)
class ApoResult:
    start: Candidate
    best: Candidate
    beam: tuple[Candidate, ...]
    scored: int
    """Candidates scored, the start included."""
    dropped: int
    """Edits dropped as empty, overlong or duplicate."""

    def metrics(self) -> dict[str, float]:
        return {
            "apo_train_reward_parent": self.start.score,
            "apo_train_reward": self.best.score,
            "apo_candidates": float(self.scored),
            "apo_dropped_edits": float(self.dropped),
            "apo_best_round": float(self.best.round),
        }


_TAGGED = re.compile(r"<prompt>(.*?)(?:</prompt>|$)", re.DOTALL | re.IGNORECASE)
_FENCE = re.compile(r"^```[\w-]*\n?(.*?)\n?```$", re.DOTALL)


def clean_edit(text: str, *, max_chars: int) -> str | None:
    """The system prompt in an optimizer reply, or None for garbage: the text between
    `<prompt>` tags when present (else the whole reply), without a surrounding code fence
    or quotes and outer whitespace; None when that is empty or longer than `max_chars`."""
    tagged = _TAGGED.search(text)
    body = (tagged.group(1) if tagged else text).strip()
    fenced = _FENCE.match(body)
    if fenced:
        body = fenced.group(1).strip()
    if len(body) >= 2 and body[0] == body[-1] and body[0] in "\"'":
        body = body[1:-1].strip()
    if not body or len(body) > max_chars:
        return None
    return body


def select_beam(candidates: Sequence[Candidate], width: int) -> list[Candidate]:
    """The `width` best distinct templates, best first; ties go to the earlier generated."""
    ranked = sorted(candidates, key=lambda c: (-c.score, c.order))
    beam: list[Candidate] = []
    seen: set[str] = set()
    for candidate in ranked:
        if candidate.template not in seen:
            seen.add(candidate.template)
            beam.append(candidate)
    return beam[:width]


def low_reward_examples(
    window: Window, count: int, *, rng: random.Random, max_chars: int
) -> list[Example]:
    """`count` episodes drawn from the window's lowest-reward ones (a pool of twice
    `count`, ordered by reward then episode key, so the draw depends only on `rng`).
    Unscored episodes are not examples: their reward is unknown, not low."""
    episodes = sorted(
        (episode.reward, episode.key, episode.calls) for episode in window.scored_episodes()
    )
    pool = episodes[: 2 * count]
    chosen = sorted(rng.sample(range(len(pool)), min(count, len(pool))))
    return [
        Example(
            task_id=pool[i][2][-1].task_id,
            reward=pool[i][0],
            prompt=_cut(pool[i][2][-1].prompt, max_chars),
            response=_cut(pool[i][2][-1].response, max_chars),
        )
        for i in chosen
    ]


def system_prompt(case: TaskCase) -> str | None:
    """The case's system message, if it has one."""
    return next((m["content"] for m in case.messages if m["role"] == "system"), None)


def with_system(case: TaskCase, template: str) -> list[dict[str, str]]:
    """The case's messages with `template` as the system message (replaced, or prepended)."""
    rest = [dict(m) for m in case.messages if m["role"] != "system"]
    return [{"role": "system", "content": template}, *rest]


def score_template(
    target: Completer,
    template: str,
    task: AgentTask,
    cases: Sequence[TaskCase],
    *,
    max_tokens: int,
    seed: int,
) -> float:
    """Mean task reward of greedy target episodes of `cases` with `template` as the
    system message (one reply each for a single-turn task; a multi-turn task's tool
    results answer each reply until the episode ends)."""
    rewards = []
    for case in cases:
        prompted = replace(case, messages=tuple(with_system(case, template)))
        completions: list[str] = []
        results: list[str] = []
        while True:
            messages = list(conversation(prompted, completions, results))
            completions.append(
                target.complete(messages, max_tokens=max_tokens, temperature=0.0, seed=seed)
            )
            result = task.tool_result(case.task_id, completions)
            if result is None or len(completions) >= task.max_turns:
                break
            results.append(result)
        rewards.append(task.reward(case.task_id, completions[-1]))
    return sum(rewards) / len(rewards)


def optimize_prompt(
    start: str,
    *,
    window: Window,
    task: AgentTask,
    optimizer: Completer,
    target: Completer,
    settings: ApoSettings,
    progress: Progress | None = None,
) -> ApoResult:
    """Beam search over system prompts from `start` (see the module docstring). `window`
    must hold at least one call. Raises whatever the endpoints raise (`EndpointError`)."""
    if not window.calls:
        raise ValueError("APO needs logged episodes to critique; the window is empty")
    cases = task.training(settings.eval_tasks, seed=settings.seed)
    requests = iter(range(settings.seed, settings.seed + 1_000_000))
    per_round = settings.beam_width * settings.branch_factor
    bar = progress.add_task("APO", total=settings.rounds * per_round) if progress else None

    def score(template: str) -> float:
        return score_template(
            target, template, task, cases, max_tokens=settings.score_max_tokens,
            seed=settings.seed,
        )  # fmt: skip

    def ask(prompt: str) -> str:
        messages = [{"role": "system", "content": _OPTIMIZER_ROLE},
                    {"role": "user", "content": prompt}]  # fmt: skip
        return optimizer.complete(
            messages, max_tokens=settings.max_tokens, temperature=settings.temperature,
            seed=next(requests),
        )  # fmt: skip

    first = Candidate(template=start, score=score(start), round=0, order=0)
    beam, seen, dropped, order = [first], {start}, 0, 1
    for round_ in range(1, settings.rounds + 1):
        children: list[Candidate] = []
        for index, parent in enumerate(beam):
            rng = random.Random(f"{settings.seed}/{round_}/{index}")
            examples = low_reward_examples(
                window, settings.critique_examples, rng=rng, max_chars=settings.max_example_chars
            )
            critique = ask(_critique_prompt(parent.template, examples))
            for branch in range(settings.branch_factor):
                edit = clean_edit(
                    ask(_edit_prompt(parent.template, critique, branch, settings.branch_factor)),
                    max_chars=settings.max_template_chars,
                )
                if edit is None or edit in seen:
                    dropped += 1
                else:
                    seen.add(edit)
                    children.append(Candidate(edit, score(edit), round_, order))
                    order += 1
                if progress is not None and bar is not None:
                    progress.advance(bar)
        beam = select_beam([*beam, *children], settings.beam_width)
        if progress is not None and bar is not None:
            progress.update(bar, description=f"APO round {round_}: best {beam[0].score:.3f}")
    return ApoResult(start=first, best=beam[0], beam=tuple(beam), scored=order, dropped=dropped)


_OPTIMIZER_ROLE = (
    "You improve the system prompt of an AI agent so that it earns higher rewards on its task."
)


def _critique_prompt(template: str, examples: Sequence[Example]) -> str:
    shown = "\n\n".join(
        f"Episode {i} (task {e.task_id}, reward {e.reward:.2f})\nInput: {e.prompt}\n"
        f"Output: {e.response}"
        for i, e in enumerate(examples, 1)
    )
    return (
        f"The agent's system prompt:\n<prompt>\n{template}\n</prompt>\n\n"
        f"Episodes where the agent earned a low reward:\n\n{shown}\n\n"
        "Explain briefly what in the system prompt led to these failures and how it should "
        "change."
    )


def _edit_prompt(template: str, critique: str, branch: int, branches: int) -> str:
    return (
        f"The agent's system prompt:\n<prompt>\n{template}\n</prompt>\n\n"
        f"A critique of it:\n{critique}\n\n"
        f"Write improved system prompt {branch + 1} of {branches}, different from the "
        "others. Reply with the new system prompt only, between <prompt> and </prompt>."
    )


def _cut(text: str, max_chars: int) -> str:
    return text if len(text) <= max_chars else text[: max_chars - 1] + "…"
