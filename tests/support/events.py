"""One valid event of each type, for tests that need realistic events."""

from __future__ import annotations

import time

import uuid_utils

from fulmen.schemas import (
    ArmEvidence,
    Attributes,
    Event,
    EventMeta,
    Feedback,
    LlmCall,
    ReleaseDecision,
    Reward,
    RolloutEvent,
    ServingAck,
    Span,
    ToolCall,
    VersionEvent,
    VersionKind,
)

TRACE = "0af7651916cd43dd8448eb211c80319c"

# Recent enough for every table's TTL; fixed for the session, so events compare equal.
NOW_NS = time.time_ns()


def meta(rollout_id: str = "rollout-1", sequence: int = 0) -> EventMeta:
    return EventMeta(
        event_id=str(uuid_utils.uuid7()),
        rollout_id=rollout_id,
        attempt=1,
        producer_id="test-producer",
        sequence=sequence,
        agent_name="calc",
        model_version="m1",
        resources_version="r1",
        emitted_at_unix_nano=time.time_ns(),
    )


def llm_span(rollout_id: str = "rollout-1", sequence: int = 0, *, payload: int = 200) -> Span:
    return Span(
        meta=meta(rollout_id, sequence),
        trace_id="0af7651916cd43dd8448eb211c80319c",
        span_id="b7ad6b7169203331",
        parent_span_id="00f067aa0ba902b7",
        name="chat smollm2",
        kind="CLIENT",
        start_time_unix_nano=NOW_NS,
        end_time_unix_nano=NOW_NS + 500_000_000,
        attributes=Attributes(strings={"server.address": "127.0.0.1"}, ints={"server.port": 8000}),
        llm=LlmCall(
            request_model="smollm2",
            input_tokens=12,
            output_tokens=3,
            finish_reasons=["stop"],
            input_messages='[{"role": "user", "content": "' + "x" * payload + '"}]',
            output_messages='[{"role": "assistant", "content": "4"}]',
            prompt_token_ids=list(range(12)),
            response_token_ids=[19, 20, 2],
            response_logprobs=[-0.25, -1.5, -0.125],
        ),
    )


def all_events(rollout_id: str = "rollout-1") -> list[Event]:
    return [
        RolloutEvent(
            meta=meta(rollout_id, 0),
            phase="started",
            task_id="2+2",
            trace_id="0af7651916cd43dd8448eb211c80319c",
        ),
        llm_span(rollout_id, 1),
        Span(
            meta=meta(rollout_id, 2),
            trace_id="0af7651916cd43dd8448eb211c80319c",
            span_id="c7ad6b7169203331",
            name="execute_tool calculator",
            start_time_unix_nano=NOW_NS,
            end_time_unix_nano=NOW_NS + 1_000,
            tool=ToolCall(name="calculator", call_id="call_1", arguments='{"a": 2}', result="4"),
        ),
        Reward(meta=meta(rollout_id, 3), value=1.0, dimensions={"exact": 1.0}, source="judge"),
        RolloutEvent(
            meta=meta(rollout_id, 4),
            phase="finished",
            task_id="2+2",
            trace_id="0af7651916cd43dd8448eb211c80319c",
            status="succeeded",
        ),
        VersionEvent(
            meta=meta(rollout_id, 5),
            version_id="calc-v2",
            kind="model",
            parent_version="calc-v1",
            algorithm="dpo",
            metrics={"heldout_reward": 0.8},
            recipe={"pairing": "rewards(min_gap=0.5, max_per_task=16)"},
        ),
        Feedback(
            meta=meta(rollout_id, 6),
            thumbs_up=False,
            source="human",
            span_id="00f067aa0ba902b7",
            correction="2 + 2 = 4",
            comment="the tool was right",
        ),
        ReleaseDecision(
            meta=meta(rollout_id, 7),
            target_agent="calc",
            kind="model",
            version_id="calc-v2",
            to_version="calc-v1",
            action="rollback",
            traffic_share=0.0,
            automatic=True,
            reason="reward below the parent's",
            rule="asymptotic-cs(alpha=0.05)",
            arms=[
                ArmEvidence(
                    version_id="calc-v2",
                    episodes=40,
                    mean_reward=0.1,
                    reward_lower=0.0,
                    reward_upper=0.3,
                    error_rate=0.0,
                    latency_mean_s=1.5,
                    tokens_mean=120.0,
                ),
                ArmEvidence(
                    version_id="calc-v1",
                    episodes=160,
                    mean_reward=0.7,
                    reward_lower=0.6,
                    reward_upper=0.8,
                    error_rate=0.05,
                    latency_mean_s=1.4,
                    tokens_mean=110.0,
                ),
            ],
        ),
        ServingAck(
            meta=meta(rollout_id, 8),
            replica_id="policy-0",
            version_id="calc-v2",
            model_name="calc-v2",
            status="loaded",
        ),
    ]


def span_id_of(step: int) -> str:
    """The span id `rollout` gives the LLM call of `step`."""
    return f"{step + 1:016x}"


def rollout(rollout_id: str = "r1", *, calls: int = 3, agent: str = "calc") -> list[Event]:
    """started, `calls` times (LLM call, tool call), a final reward, finished: in emit order."""
    events: list[Event] = []
    seq = iter(range(1000))

    def m() -> object:
        return meta(rollout_id, next(seq)).model_copy(update={"agent_name": agent})

    events.append(
        RolloutEvent(meta=m(), phase="started", task_id="2+2", trace_id=TRACE, input="{}")
    )
    for step in range(calls):
        events.append(
            Span(
                meta=m(), trace_id=TRACE, span_id=span_id_of(step), name="chat calc",
                start_time_unix_nano=NOW_NS + step, end_time_unix_nano=NOW_NS + step + 1,
                llm=LlmCall(
                    request_model="calc", input_messages=f"[{step}]", output_messages=f"[{step}!]",
                    prompt_token_ids=[1, 2, step],
                    response_token_ids=[step],
                    response_logprobs=[-0.5],
                ),
            )
        )  # fmt: skip
        events.append(
            Span(
                meta=m(), trace_id=TRACE, span_id=f"{step + 100:016x}", name="execute_tool add",
                start_time_unix_nano=NOW_NS + step, end_time_unix_nano=NOW_NS + step + 1,
                tool=ToolCall(name="add"),
            )
        )  # fmt: skip
    events.append(Reward(meta=m(), value=1.0))
    events.append(
        RolloutEvent(meta=m(), phase="finished", task_id="2+2", trace_id=TRACE, status="succeeded")
    )
    return events


def version_event(
    version_id: str,
    kind: VersionKind = "model",
    *,
    target: str | None = None,
    templates: dict[str, str] | None = None,
) -> VersionEvent:
    """A version as a trainer would publish it: a model version names an adapter and where
    it lives, a prompt version carries its templates."""
    from fulmen.producers import version_meta

    model = kind == "model"
    return VersionEvent(
        meta=version_meta(),
        version_id=version_id,
        kind=kind,
        target_agent=target,
        algorithm="rl" if model else "apo",
        model_name=f"{version_id}-name" if model else None,
        artifact_uri=f"s3://models/{version_id}" if model else None,
        prompt_templates=templates or {},
    )


def in_attempt(event: Event, attempt: int) -> Event:
    """`event` as part of the rollout's attempt `attempt`."""
    return event.model_copy(update={"meta": event.meta.model_copy(update={"attempt": attempt})})
