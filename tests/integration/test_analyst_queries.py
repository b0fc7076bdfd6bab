"""Every question in docs/analysts.md runs, against a store filled by a real agent run."""

from __future__ import annotations

import contextlib
import random
import re
import time
from collections.abc import Callable
from pathlib import Path

import openai
import pyarrow as pa
import pytest

import fulmen
from fulmen.producers import FulmenSettings, InProcessBus
from fulmen.schemas import Event, SingleObjectCodec, VersionEvent
from fulmen.store import TABLES, LightningStore
from tests.support.events import meta
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
    success = filled.sql(
        f"SELECT task_id, success_rate FROM {db}.success_by_agent_task"
    ).to_pylist()
    by_task = {row["task_id"]: row["success_rate"] for row in success}
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
        f"max(mean_reward) AS mean FROM {db}.episode_reward_by_version_hourly"
    ).to_pylist()
    assert by_version == {"scored": 1, "unscored": 1, "mean": 1.0}  # not (1.0 + 0) / 2
