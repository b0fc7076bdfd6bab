"""A custom reward source: an LLM judge that scores finished rollouts after the fact and
posts its scores as `judge` rewards, through the SDK or the gateway's HTTP endpoint.

The contract of a reward source: a reward names the rollout (and attempt) it scores, and
optionally one of its spans (`span_id`, e.g. the LLM call judged) for per-call credit; its
`source` says who scored (`programmatic`, `human`, `judge`) and `name` which reward it is.
Rewards may arrive any time after the rollout: the stream stage re-assembles the episode
(a new revision) with them. Credit per span by source: `PerCallReward(source="judge")`.

    verdict = judge(client, question, answer)
    post_with_sdk(rollout_id, verdict)                # in a process with Fulmen configured
    post_to_gateway(gateway_url, rollout_id, verdict) # from anywhere, any language
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import openai

import fulmen
from examples._calculator_agent import DEFAULT_MODEL

JUDGE_PROMPT = (
    "You grade answers to arithmetic word problems. Reply with a single digit from 0 to 9: "
    "how likely the answer is correct."
)
REWARD_NAME = "judge"
"""Judge rewards get their own name: credit follows the primary name (`reward`) unless a
trainer or assigner asks for this one."""


@dataclass(frozen=True, slots=True)
class Verdict:
    score: float
    """In [0, 1]."""
    rationale: str


def judge(
    client: openai.OpenAI, question: str, answer: str, *, model: str = DEFAULT_MODEL
) -> Verdict:
    """Ask the judge model for a 0-9 grade; an unparsable reply scores 0."""
    reply = client.chat.completions.create(
        model=model,
        messages=[
            {"role": "system", "content": JUDGE_PROMPT},
            {"role": "user", "content": f"Problem: {question}\nAnswer: {answer}"},
        ],
        temperature=0.0,
        max_tokens=4,
    )
    text = (reply.choices[0].message.content or "").strip()
    digit = next((c for c in text if c.isdigit()), None)
    return Verdict(score=int(digit) / 9 if digit else 0.0, rationale=text)


def post_with_sdk(rollout_id: str, verdict: Verdict, *, span_id: str | None = None) -> None:
    """Through the producer SDK (the process's Kafka or in-process transport)."""
    fulmen.emit_reward(
        verdict.score,
        name=REWARD_NAME,
        source="judge",
        rollout_id=rollout_id,
        span_id=span_id,
        comment=verdict.rationale,
    )


def post_to_gateway(
    gateway_url: str, rollout_id: str, verdict: Verdict, *, span_id: str | None = None
) -> None:
    """Through `fulmen gateway`'s `POST /rollouts/{id}/rewards` (no SDK needed)."""
    body = {"value": verdict.score, "name": REWARD_NAME, "source": "judge",
            "span_id": span_id, "comment": verdict.rationale}  # fmt: skip
    httpx.post(f"{gateway_url}/rollouts/{rollout_id}/rewards", json=body).raise_for_status()
