"""Every question in docs/analysts.md runs, against a store filled by a real agent run."""

from __future__ import annotations

import contextlib
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import openai
import pyarrow as pa
import pytest

import fulmen
from fulmen.kafka import TopicSettings
from fulmen.producers import FulmenSettings, InProcessBus
from fulmen.schemas import (
    Event,
    EventMeta,
    LlmCall,
    Reward,
    RolloutEvent,
    SingleObjectCodec,
    Span,
    SpanStatus,
    ToolCall,
    VersionEvent,
)
from fulmen.store import TABLES, LightningStore
from fulmen.streams import AssemblyPolicy, EmbeddedRunner
from tests.support.events import TRACE, meta
from tests.support.openai_server import OpenAIServer

pytestmark = pytest.mark.integration
DOCS = Path(__file__).resolve().parents[2] / "docs" / "analysts.md"


def questions() -> list[str]:
    return re.findall(r"```sql\n(.*?)```", DOCS.read_text(), flags=re.DOTALL)


def _run_agent(tmp: Path, *, model_version: str, rollouts: int) -> list[Event]:
    """A tool-using agent with an LLM call per rollout, some failures, scored by a reward."""
    bus = InProcessBus()
    settings = FulmenSettings(
        producer={"spill_dir": tmp, "agent_name": "calc", "model_version": model_version}
    )
    fulmen.configure(settings, bus=bus)
    rng = random.Random(model_version)

    @fulmen.tool
    def divide(a: int, b: int) -> float:
        return a / b

    with OpenAIServer() as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="x")

        @fulmen.rollout(task_id=lambda a, b: f"{a}/{b}")
        def agent(a: int, b: int) -> None:
            client.chat.completions.create(
                model="calc", messages=[{"role": "user", "content": "?"}]
            )
            divide(a, b)
            fulmen.emit_reward(rng.random())
            if a == 1:  # a user rates the answers to 1/b: 1/2 down, with a correction
                fulmen.emit_feedback(
                    "down" if b == 2 else "up", correction="0.5" if b == 2 else None
                )

        for i in range(rollouts):
            # b == 0 every 4th rollout: a tool error and a failed rollout
            with contextlib.suppress(ZeroDivisionError):
                agent(i % 3, i % 4)
    assert fulmen.get_producer().flush(10)
    fulmen.shutdown()
    codec = SingleObjectCodec()
    return [
        codec.decode(m.value, topic=topic)
        for topic in settings.topics.event_topics()
        for m in bus.read(topic, 0, max_messages=100_000, timeout_s=0)
    ]


@pytest.fixture(scope="module")
def filled(
    new_store: Callable[[], LightningStore], tmp_path_factory: pytest.TempPathFactory
) -> LightningStore:
    store = new_store()
    for version in ("calc-v1", "calc-v2"):
        store.write_events(
            _run_agent(tmp_path_factory.mktemp(version), model_version=version, rollouts=12)
        )
    store.write_events(
        [
            VersionEvent(
                meta=meta("train-1"),
                version_id="calc-v2",
                kind="model",
                parent_version="calc-v1",
                algorithm="rl",
            )
        ]
    )
    now = time.time_ns()
    store.insert(
        "episodes",
        pa.Table.from_pylist(
            [
                {
                    "rollout_id": rollout_id,
                    "attempt": 1,
                    "revision": revision,
                    "agent_name": "calc",
                    "task_id": "1/1",
                    "model_version": "calc-v2",
                    "resources_version": "",
                    "status": "succeeded",
                    "scored": reward is not None,
                    "reward": reward,
                    "rewards": {} if reward is None else {"reward": reward},
                    "credit_assignment": "final",
                    "started_at": now,
                    "finished_at": now,
                    "assembled_at": now // 1_000_000,
                    "num_spans": 3,
                    "num_llm_calls": 1,
                    "num_tool_calls": 1,
                    "num_tool_errors": 0,
                    "input": None,
                    "error": None,
                    "num_events": 5,
                }
                for rollout_id, revision, reward in (
                    ("e-1", 0, 0.0),
                    ("e-1", 1, 1.0),
                    ("e-2", 0, None),  # its reward never came: unscored
                )
            ],
            schema=TABLES["episodes"],
        ),
    )
    store.insert(
        "dead_letters",
        pa.Table.from_pylist(
            [
                {
                    "received_at": now // 1_000_000,
                    "topic": "fulmen.spans",
                    "partition": 0,
                    "offset": 7,
                    "key": b"r",
                    "value": b"junk",
                    "problem": "bad_magic",
                    "detail": "expected C3 01",
                }
            ],
            schema=TABLES["dead_letters"],
        ),
    )
    return store


def test_there_are_at_least_ten_questions() -> None:
    assert len(questions()) >= 10


@pytest.mark.parametrize("number", range(len(questions())))
def test_question_runs_and_answers(filled: LightningStore, number: int) -> None:
    sql = questions()[number].replace("fulmen.", f"{filled.settings.database}.")
    result = filled.sql(sql)
    assert result.num_rows > 0, f"question {number + 1} returned nothing"


def test_the_answers_are_right(filled: LightningStore) -> None:
    db = filled.settings.database
    completion = filled.sql(
        f"SELECT task_id, completion_rate FROM {db}.completion_by_agent_task"
    ).to_pylist()
    by_task = {row["task_id"]: row["completion_rate"] for row in completion}
    assert by_task["0/0"] == 0.0  # division by zero fails every time
    assert by_task["1/1"] == 1.0
    tools = filled.sql(
        f"SELECT sum(call_count) AS calls, sum(error_count) AS errors FROM {db}.tool_error_rate"
    ).to_pylist()[0]
    assert (tools["calls"], tools["errors"]) == (24, 6)
    usage = filled.sql(f"SELECT sum(call_count) AS calls FROM {db}.llm_usage_by_model").to_pylist()[
        0
    ]
    assert usage["calls"] == 24
    latest = filled.sql(
        f"SELECT * FROM (SELECT rollout_id, revision, scored, reward FROM {db}.episodes "
        "ORDER BY revision DESC LIMIT 1 BY rollout_id, attempt) ORDER BY rollout_id"
    ).to_pylist()
    assert latest == [
        {"rollout_id": "e-1", "revision": 1, "scored": True, "reward": 1.0},
        {"rollout_id": "e-2", "revision": 0, "scored": False, "reward": None},
    ]
    [by_version] = filled.sql(
        "SELECT sum(scored_count) AS scored, sum(unscored_count) AS unscored, "
        f"max(mean_reward) AS mean FROM {db}.reward_by_version_hourly"
    ).to_pylist()
    assert by_version == {"scored": 1, "unscored": 1, "mean": 1.0}  # not (1.0 + 0) / 2


# A store filled with known data, through the stream stage (the embedded runner): each
# expected answer below is computed in Python from these inputs, not by SQL.


@dataclass(frozen=True)
class Run:
    """One rollout: its agent and task, the hour it finished in (0 or 1), the model version
    it started with and the one its later events carry (a version swap mid-rollout), how it
    ended, its rewards on time and those that come late (`(value, by_judge)`), and its LLM
    and tool calls (`(milliseconds, failed)`)."""

    rollout_id: str
    agent: str
    task: str
    hour: int
    version: str
    later_version: str
    status: Literal["succeeded", "failed"]
    rewards: tuple[tuple[float, bool], ...] = ()
    late_rewards: tuple[tuple[float, bool], ...] = ()
    llm_ms: tuple[float, ...] = (100.0,)
    tool_calls: tuple[tuple[float, bool], ...] = ((10.0, False),)


JUDGE_VERSION = "judge-v9"
RUNS = (
    Run("a1", "shop", "t1", 0, "v1", "v1", "succeeded", ((1.0, False),), llm_ms=(120.0, 80.0)),
    Run("a2", "shop", "t1", 0, "v1", "v1", "succeeded", ((0.0, False),), llm_ms=(300.0,)),
    # swapped to v2 mid-rollout after its one LLM call: the episode is v1's (v1 served it),
    # its later tool calls carry v2
    Run(
        "a3",
        "shop",
        "t1",
        0,
        "v1",
        "v2",
        "succeeded",
        ((1.0, False),),
        llm_ms=(50.0,),
        tool_calls=((20.0, False), (40.0, True)),
    ),
    # its reward came late: revision 0 unscored, revision 1 scored 0.5
    Run(
        "a4",
        "shop",
        "t2",
        0,
        "v1",
        "v1",
        "succeeded",
        late_rewards=((0.5, False),),
        tool_calls=((30.0, True),),
    ),
    # a judge added 0.6 to the agent's 0.4 later: revision 1 scores 1.0
    Run(
        "a5",
        "shop",
        "t2",
        1,
        "v2",
        "v2",
        "succeeded",
        ((0.4, False),),
        ((0.6, True),),
        llm_ms=(200.0, 400.0, 600.0),
    ),
    Run("a6", "shop", "t2", 1, "v2", "v2", "failed", tool_calls=((5.0, True),)),  # unscored
    Run("a7", "shop", "t1", 1, "v2", "v2", "succeeded"),  # finished, never scored
    Run("b1", "mail", "t1", 1, "v1", "v1", "succeeded", late_rewards=((1.0, True),)),
    Run("b2", "mail", "t1", 1, "v1", "v1", "succeeded", ((0.25, False),), llm_ms=(70.0,)),
    # swapped between its two LLM calls: the episode is v1+v2's, neither version's alone
    Run("a8", "shop", "t1", 0, "v1", "v2", "succeeded", ((0.75, False),), llm_ms=(60.0, 90.0)),
)
# Undecodable or misrouted messages: (topic, bytes); an event on another kind's topic is
# added in `known` (wrong_topic).
GARBAGE = (
    ("fulmen.spans", b"garbage, not an Avro event"),  # bad_magic
    ("fulmen.spans", b"\xc3"),  # truncated
    ("fulmen.rewards", b"more garbage, not Avro either"),  # bad_magic
)
EXPECTED_DEAD = {
    ("fulmen.spans", "bad_magic"): 1,
    ("fulmen.spans", "truncated"): 1,
    ("fulmen.rewards", "bad_magic"): 1,
    ("fulmen.spans", "wrong_topic"): 1,
}


def _hour0() -> int:
    """The start of the hour before this one, in ns: recent enough for every TTL."""
    hour_ns = 3600 * 10**9
    return (time.time_ns() // hour_ns - 1) * hour_ns


def _events(run: Run, hour0: int, *, late: bool) -> list[Event]:
    """The events of `run`, in emit order: all but its late rewards, or only those."""
    at = hour0 + run.hour * 3600 * 10**9 + 10 * 60 * 10**9  # ten past the hour
    seq = iter(range(1000))

    def m(version: str, *, judge: bool = False) -> EventMeta:
        return meta(run.rollout_id, next(seq)).model_copy(
            update={
                "agent_name": run.agent,
                "model_version": JUDGE_VERSION if judge else version,
                "producer_id": "judge-1" if judge else f"{run.agent}-1",
                "emitted_at_unix_nano": at,
            }
        )

    def reward(value: float, judge: bool) -> Reward:
        return Reward(
            meta=m(run.later_version, judge=judge),
            value=value,
            source="judge" if judge else "programmatic",
        )

    if late:
        return [reward(value, judge) for value, judge in run.late_rewards]
    events: list[Event] = [
        RolloutEvent(meta=m(run.version), phase="started", task_id=run.task, trace_id=TRACE)
    ]
    for step, ms in enumerate(run.llm_ms):
        events.append(
            Span(
                meta=m(run.version if step == 0 else run.later_version), trace_id=TRACE,
                span_id=f"{step + 1:016x}", name="chat gpt-x",
                start_time_unix_nano=at, end_time_unix_nano=at + int(ms * 1e6),
                llm=LlmCall(request_model="gpt-x", input_messages="[]", output_messages="[]"),
            )
        )  # fmt: skip
    for step, (ms, failed) in enumerate(run.tool_calls):
        events.append(
            Span(
                meta=m(run.version if step == 0 else run.later_version), trace_id=TRACE,
                span_id=f"{step + 100:016x}", name="execute_tool search",
                start_time_unix_nano=at, end_time_unix_nano=at + int(ms * 1e6),
                status=SpanStatus(code="ERROR" if failed else "OK"),
                tool=ToolCall(name="search"),
            )
        )  # fmt: skip
    events.extend(reward(value, judge) for value, judge in run.rewards)
    events.append(
        RolloutEvent(
            meta=m(run.later_version), phase="finished", task_id=run.task, trace_id=TRACE,
            status=run.status, error="boom" if run.status == "failed" else None,
        )
    )  # fmt: skip
    return events


@pytest.fixture(scope="module")
def known(new_store: Callable[[], LightningStore]) -> LightningStore:
    store = new_store()
    bus = InProcessBus()
    codec = SingleObjectCodec()
    topics = TopicSettings()
    hour0 = _hour0()
    runner = EmbeddedRunner(bus, store, policy=AssemblyPolicy(grace_s=0.0))

    def send(events: list[Event]) -> None:
        for event in events:
            topic = topics.for_event(event.event_type)
            bus.append(topic, event.meta.rollout_id.encode(), codec.encode(event, topic=topic))

    send([event for run in RUNS for event in _events(run, hour0, late=False)])
    for topic, value in GARBAGE:
        bus.append(topic, b"x", value)
    misrouted = Reward(meta=meta("lost"), value=1.0)
    bus.append("fulmen.spans", b"lost", codec.encode(misrouted, topic="fulmen.rewards"))
    runner.finish()  # revision 0 of every episode
    send([event for run in RUNS for event in _events(run, hour0, late=True)])
    runner.finish()  # revision 1 of those with late rewards
    return store


def _hour_of(run: Run) -> int:
    return _hour0() // 10**9 + run.hour * 3600


def _served_by(run: Run) -> str:
    """The episode's version: those of its LLM calls, each once in call order, joined by
    `+`; the version it started with when it made none."""
    calls = [run.version if step == 0 else run.later_version for step in range(len(run.llm_ms))]
    return "+".join(dict.fromkeys(calls)) or run.version


def _episode_reward(run: Run) -> float | None:
    """The latest revision's reward: the sum of every reward it got, none if it got none."""
    values = [value for value, _ in run.rewards + run.late_rewards]
    return sum(values) if values else None


def _quantile(values: list[float], level: float) -> float:
    """ClickHouse's `quantile` on few values: linear interpolation between the sorted ones."""
    ordered = sorted(values)
    position = level * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _rows(store: LightningStore, sql: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = store.sql(
        sql.replace("fulmen.", f"{store.settings.database}.")
    ).to_pylist()
    return rows


def test_known_data_is_assembled_with_revisions(known: LightningStore) -> None:
    latest = _rows(
        known, "SELECT rollout_id, revision, scored FROM fulmen.latest_episodes ORDER BY rollout_id"
    )
    assert [(row["rollout_id"], row["revision"], row["scored"]) for row in latest] == [
        (run.rollout_id, 1 if run.late_rewards else 0, _episode_reward(run) is not None)
        for run in sorted(RUNS, key=lambda run: run.rollout_id)
    ]


def test_reward_by_version_hourly_is_over_latest_episodes_by_their_version(
    known: LightningStore,
) -> None:
    groups: dict[tuple[int, str, str], list[Run]] = {}
    for run in RUNS:
        groups.setdefault((_hour_of(run), run.agent, _served_by(run)), []).append(run)
    expected = []
    for (hour, agent, version), runs in sorted(groups.items()):
        rewards = [r for r in map(_episode_reward, runs) if r is not None]
        expected.append(
            {
                "hour": hour,
                "agent_name": agent,
                "model_version": version,
                "episode_count": len(runs),
                "scored_count": len(rewards),
                "unscored_count": len(runs) - len(rewards),
                "mean_reward": pytest.approx(sum(rewards) / len(rewards)),
                "p50": pytest.approx(_quantile(rewards, 0.5)),
            }
        )
    rows = _rows(
        known,
        "SELECT toUnixTimestamp(hour) AS hour, agent_name, model_version, episode_count, "
        "scored_count, unscored_count, mean_reward, reward_p10_p50_p90[2] AS p50 "
        "FROM fulmen.reward_by_version_hourly ORDER BY hour, agent_name, model_version",
    )
    assert rows == expected
    assert JUDGE_VERSION not in {row["model_version"] for row in rows}


def test_success_is_by_reward_and_completion_apart(known: LightningStore) -> None:
    def expected(threshold: float) -> dict[tuple[str, str], tuple[int, int, int, float | None]]:
        out: dict[tuple[str, str], tuple[int, int, int, float | None]] = {}
        for agent, task in sorted({(run.agent, run.task) for run in RUNS}):
            runs = [run for run in RUNS if (run.agent, run.task) == (agent, task)]
            rewards = [r for r in map(_episode_reward, runs) if r is not None]
            wins = sum(reward >= threshold for reward in rewards)
            out[agent, task] = (len(rewards), len(runs) - len(rewards), wins,
                                wins / len(rewards) if rewards else None)  # fmt: skip
        return out

    def answered(sql: str) -> dict[tuple[str, str], tuple[int, int, int, float | None]]:
        return {
            (row["agent_name"], row["task_id"]): tuple(
                row[name]
                for name in ("scored_count", "unscored_count", "success_count", "success_rate")
            )
            for row in _rows(known, sql)
        }

    assert answered("SELECT * FROM fulmen.success_by_agent_task") == expected(1.0)
    assert answered("SELECT * FROM fulmen.success_by_agent_task_at(threshold = 0.5)") == (
        expected(0.5)
    )
    completion = {
        (row["agent_name"], row["task_id"]): (row["finished_count"], row["completion_rate"])
        for row in _rows(known, "SELECT * FROM fulmen.completion_by_agent_task")
    }
    assert completion == {
        key: (
            len(runs := [run for run in RUNS if (run.agent, run.task) == key]),
            pytest.approx(sum(run.status == "succeeded" for run in runs) / len(runs)),
        )
        for key in {(run.agent, run.task) for run in RUNS}
    }


def test_llm_latency_percentiles_per_model_and_version(known: LightningStore) -> None:
    calls: dict[tuple[int, str], list[float]] = {}
    for run in RUNS:
        for step, ms in enumerate(run.llm_ms):
            version = run.version if step == 0 else run.later_version
            calls.setdefault((_hour_of(run), version), []).append(ms)
    rows = _rows(
        known,
        "SELECT toUnixTimestamp(hour) AS hour, request_model, model_version, call_count, "
        "latency_p50_ms, latency_p90_ms, latency_p99_ms "
        "FROM fulmen.llm_usage_by_model ORDER BY hour, model_version",
    )
    assert rows == [
        {
            "hour": hour,
            "request_model": "gpt-x",
            "model_version": version,
            "call_count": len(ms),
            "latency_p50_ms": pytest.approx(_quantile(ms, 0.5)),
            "latency_p90_ms": pytest.approx(_quantile(ms, 0.9)),
            "latency_p99_ms": pytest.approx(_quantile(ms, 0.99)),
        }
        for (hour, version), ms in sorted(calls.items())
    ]


def test_tool_error_rate_and_latency_per_version(known: LightningStore) -> None:
    calls: dict[tuple[int, str], list[tuple[float, bool]]] = {}
    for run in RUNS:
        for step, call in enumerate(run.tool_calls):
            version = run.version if step == 0 else run.later_version
            calls.setdefault((_hour_of(run), version), []).append(call)
    rows = _rows(
        known,
        "SELECT toUnixTimestamp(hour) AS hour, model_version, call_count, error_count, "
        "error_rate, latency_p50_ms, latency_p90_ms, latency_p99_ms "
        "FROM fulmen.tool_error_rate WHERE tool_name = 'search' ORDER BY hour, model_version",
    )
    assert rows == [
        {
            "hour": hour,
            "model_version": version,
            "call_count": len(made),
            "error_count": sum(failed for _, failed in made),
            "error_rate": pytest.approx(sum(failed for _, failed in made) / len(made)),
            "latency_p50_ms": pytest.approx(_quantile([ms for ms, _ in made], 0.5)),
            "latency_p90_ms": pytest.approx(_quantile([ms for ms, _ in made], 0.9)),
            "latency_p99_ms": pytest.approx(_quantile([ms for ms, _ in made], 0.99)),
        }
        for (hour, version), made in sorted(calls.items())
    ]


def test_dead_letters_by_reason_and_topic_per_hour(known: LightningStore) -> None:
    rows = _rows(
        known,
        "SELECT toUnixTimestamp(hour) AS hour, topic, problem, message_count "
        "FROM fulmen.dead_letters_hourly",
    )
    counts: dict[tuple[str, str], int] = {}
    for row in rows:
        counts[row["topic"], row["problem"]] = (
            counts.get((row["topic"], row["problem"]), 0) + (row["message_count"])
        )
        assert row["hour"] % 3600 == 0
        assert time.time() - 7200 < row["hour"] <= time.time()
    assert counts == EXPECTED_DEAD
