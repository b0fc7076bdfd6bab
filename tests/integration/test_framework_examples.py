"""The framework examples, run for real: LangGraph, the OpenAI Agents SDK, AutoGen, the
multi-agent pair, the LLM judge and the multi-turn lookup agent, each against the local
policy server (a tiny model built from a config, offline) and, for the frameworks' native
tool-call path and scripted multi-turn episodes, against the scripted OpenAI-compatible
server of tests/support (the policy server does not parse tool calls out of model output).
Their episodes go through the embedded runner into the store, which must then hold their
LLM calls (with token ids), tool calls, steps and rewards."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import openai
import pytest
from langchain_openai import ChatOpenAI

import fulmen
from examples import (
    autogen_calculator,
    judge_rewards,
    langgraph_calculator,
    multi_agent,
    openai_lookup,
)
from examples import openai_agents_calculator as agents_calculator
from fulmen.models import tiny_model_dir
from fulmen.producers import FulmenSettings, InProcessBus
from fulmen.producers.integrations import instrument_autogen
from fulmen.serving import PolicyServer, serve_in_thread
from fulmen.store import LightningStore
from fulmen.streams import AssemblyPolicy, EmbeddedRunner, load_credit_assigner
from fulmen.tasks import CalculatorTask, LookupTask
from tests.support.openai_server import OpenAIServer

pytestmark = pytest.mark.integration

TASK = CalculatorTask()
CASES = TASK.training(2, seed=5)
Upstream = Literal["policy", "scripted"]


@dataclass(frozen=True)
class Endpoint:
    base_url: str
    model: str


@pytest.fixture(scope="module")
def policy_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoint]:
    server = PolicyServer(tiny_model_dir(tmp_path_factory.mktemp("tiny"), seed=3))
    with serve_in_thread(server) as url:
        yield Endpoint(url, server.name)


@pytest.fixture
def endpoint(request: pytest.FixtureRequest, policy_server: Endpoint) -> Iterator[Endpoint]:
    if request.param == "policy":
        yield policy_server
        return
    with OpenAIServer() as scripted:
        yield Endpoint(scripted.base_url, "scripted")


@dataclass
class Loop:
    bus: InProcessBus
    store: LightningStore

    def finish(self, *, credit: str = "final") -> None:
        assert fulmen.get_producer().flush(10)
        policy = AssemblyPolicy(grace_s=0.0, credit=load_credit_assigner(credit))
        EmbeddedRunner(self.bus, self.store, policy=policy).finish()

    def rows(self, sql: str) -> list[dict[str, object]]:
        table = self.store.sql(sql.replace("$db", self.store.settings.database))
        return table.to_pylist()  # type: ignore[no-any-return]


@pytest.fixture
def loop(tmp_path: Path, new_store: Callable[[], LightningStore]) -> Iterator[Loop]:
    bus = InProcessBus()
    settings = FulmenSettings(
        producer={"agent_name": "calculator", "spill_dir": tmp_path / "spill",
                  "request_token_ids": True},
    )  # fmt: skip
    fulmen.configure(settings, bus=bus)
    yield Loop(bus, new_store())
    fulmen.shutdown()


def assert_landed(
    loop: Loop,
    upstream: Upstream,
    *,
    steps: set[str],
    agent: str = "calculator",
    tool_results: bool = True,
) -> None:
    """Episodes with token-id LLM calls and rewards; a calculator tool span with its result
    when the model made a native tool call (the scripted server always does)."""
    spans = loop.rows(
        "SELECT name, length(llm_response_token_ids) AS ids, tool_name, tool_result "
        f"FROM $db.spans WHERE agent_name = '{agent}'"
    )
    names = {str(s["name"]) for s in spans}
    assert steps <= names, names
    llm_calls = [s for s in spans if str(s["name"]).startswith("chat ")]
    assert llm_calls
    assert all(int(str(s["ids"])) > 0 for s in llm_calls)
    episodes = loop.rows(f"SELECT rollout_id FROM $db.episodes WHERE agent_name = '{agent}'")
    rewards = loop.rows(f"SELECT value FROM $db.rewards WHERE agent_name = '{agent}'")
    assert len(episodes) == len(rewards) > 0
    trainable = loop.rows(  # what a trainer's window reads: calls with token ids and credit
        "SELECT count() AS n FROM $db.triplets "
        f"WHERE agent_name = '{agent}' AND length(response_token_ids) > 0"
    )
    assert int(str(trainable[0]["n"])) == len(llm_calls)
    tools = [s for s in spans if s["tool_name"] == "calculator"]
    if upstream == "scripted":  # it answers `2 + 2` with a native calculator call
        assert tools
        if tool_results:
            assert all(str(t["tool_result"]).strip('"') == "4.0" for t in tools)


@pytest.mark.parametrize("endpoint", ["policy", "scripted"], indirect=True)
def test_langgraph_example(loop: Loop, endpoint: Endpoint, request: pytest.FixtureRequest) -> None:
    model = ChatOpenAI(base_url=endpoint.base_url, api_key="local", model=endpoint.model,
                       max_tokens=40, temperature=0.5)  # fmt: skip
    graph = langgraph_calculator.build_graph(model)
    for case in CASES:
        langgraph_calculator.solve(graph, TASK, case)
    loop.finish(credit="examples.credit.length_penalty:LengthPenalty")
    assert_landed(
        loop, request.node.callspec.params["endpoint"], steps={"LangGraph", "think", "act"}
    )
    credit = loop.rows("SELECT DISTINCT credit_assignment AS c FROM $db.episodes")
    assert [row["c"] for row in credit] == ["length_penalty(budget=24,penalty=0.02)"]


@pytest.mark.parametrize("endpoint", ["policy", "scripted"], indirect=True)
def test_openai_agents_example(
    loop: Loop, endpoint: Endpoint, request: pytest.FixtureRequest
) -> None:
    agents_calculator.use_fulmen_tracing()
    client = openai.AsyncOpenAI(base_url=endpoint.base_url, api_key="local", max_retries=0)
    agent = agents_calculator.build_agent(client, model=endpoint.model)

    async def run_all() -> None:  # one event loop for the client's connections
        for case in CASES:
            await agents_calculator.solve(agent, TASK, case)

    asyncio.run(run_all())
    loop.finish()
    assert_landed(loop, request.node.callspec.params["endpoint"], steps={"invoke_agent calculator"})


@pytest.mark.parametrize("endpoint", ["policy", "scripted"], indirect=True)
def test_autogen_example(loop: Loop, endpoint: Endpoint, request: pytest.FixtureRequest) -> None:
    instrument_autogen()
    client = autogen_calculator.model_client(endpoint.base_url, model=endpoint.model)

    async def run_all() -> None:
        for case in CASES:
            await autogen_calculator.solve(client, TASK, case)

    asyncio.run(run_all())
    loop.finish()
    assert_landed(
        loop,
        request.node.callspec.params["endpoint"],
        steps={"invoke_agent calculator"},
        tool_results=False,  # AutoGen's tool spans carry neither
    )


def test_multi_agent_example_trains_one_agent_by_name(loop: Loop, policy_server: Endpoint) -> None:
    client = openai.OpenAI(base_url=policy_server.base_url, api_key="local", max_retries=0)
    for case in CASES:
        multi_agent.cooperate(client, TASK, case, model=policy_server.model)
    loop.finish()
    agents = loop.rows(
        "SELECT agent_name AS a, count() AS n FROM $db.episodes GROUP BY a ORDER BY a"
    )
    assert agents == [{"a": "checker", "n": 2}, {"a": "solver", "n": 2}]
    assert_landed(loop, "policy", steps=set(), agent="solver")


def test_judge_rewards_land_as_judge_rewards(loop: Loop, policy_server: Endpoint) -> None:
    client = openai.OpenAI(base_url=policy_server.base_url, api_key="local", max_retries=0)
    with fulmen.rollout(task_id=CASES[0].task_id) as rollout:
        answer = "7"
    verdict = judge_rewards.judge(client, CASES[0].messages[-1]["content"], answer,
                                  model=policy_server.model)  # fmt: skip
    judge_rewards.post_with_sdk(rollout.rollout_id, verdict)
    loop.finish()
    [reward] = loop.rows("SELECT rollout_id, name, source, value FROM $db.rewards")
    assert reward["rollout_id"] == rollout.rollout_id
    assert (reward["name"], reward["source"]) == ("judge", "judge")
    assert 0.0 <= float(str(reward["value"])) <= 1.0


LOOKUP = LookupTask()
LOOKUP_CASES = {case.messages[-1]["content"]: case for case in LOOKUP.training(6, seed=3)}


def lookup_script(request: dict[str, object]) -> str:
    """A scripted model of the lookup agent: a lookup of an item no shop sells, then one
    lookup per item the question needs, then the right calculator call."""
    messages = request["messages"]
    assert isinstance(messages, list)
    base = len(LOOKUP.heldout(1)[0].messages)
    case = LOOKUP_CASES[messages[base - 1]["content"]]
    order = LOOKUP.order(case.task_id)
    turn = (len(messages) - base) // 2
    if turn == 0:
        return '{"tool": "lookup", "item": "widget"}'
    if turn <= len(order.quantities):
        return json.dumps({"tool": "lookup", "item": order.quantities[turn - 1][0]})
    prices = dict(order.prices)
    bill = " + ".join(f"{n} * {prices[item]}" for item, n in order.quantities)
    return json.dumps({"tool": "calculator", "expression": bill})


def discounted(steps: list[float], final: float, gamma: float) -> list[float]:
    returns, running = [], 0.0
    for index in reversed(range(len(steps))):
        running = steps[index] + (final if index == len(steps) - 1 else 0.0) + gamma * running
        returns.append(running)
    return returns[::-1]


@pytest.mark.parametrize("credit", ["final", "per_call", "discounted"])
def test_lookup_example_credits_each_turn(loop: Loop, credit: str) -> None:
    """Multi-turn episodes through the real pipeline: every LLM call a triplet in turn order,
    its step reward on its own span, and the credit each built-in assigner gives."""
    with OpenAIServer(reply=lookup_script) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="local", max_retries=0)
        answers = [openai_lookup.solve(client, LOOKUP, case) for case in LOOKUP_CASES.values()]
    bills = [LOOKUP.order(case.task_id).bill for case in LOOKUP_CASES.values()]
    assert answers == bills
    loop.finish(credit=credit)
    episodes = loop.rows(
        "SELECT rollout_id, task_id, reward, num_llm_calls AS calls, num_tool_calls AS tools "
        "FROM $db.episodes"
    )
    assert len(episodes) == len(LOOKUP_CASES)
    for episode in episodes:
        items = len(LOOKUP.order(str(episode["task_id"])).quantities)
        assert episode["calls"] == items + 2  # the wrong lookup, one per item, the calculator
        assert episode["tools"] == items + 3  # the shop answering each reply, the calculator
        triplets = loop.rows(
            "SELECT step, reward FROM $db.triplets "
            f"WHERE rollout_id = '{episode['rollout_id']}' ORDER BY step"
        )
        steps = [0.0] + [1.0] * (items + 1)
        expected = {
            "final": [1.0] * len(steps),
            "per_call": steps,
            "discounted": discounted(steps, 1.0, 0.95),  # load_credit_assigner's gamma
        }[credit]
        assert [t["step"] for t in triplets] == list(range(len(steps)))
        assert [t["reward"] for t in triplets] == pytest.approx(expected)
