"""The dashboard in headless Chromium, against a store filled by a real run on the embedded
default: an instrumented agent (SDK, OpenAI capture, a tool) → in-process bus →
EmbeddedRunner → chDB, with versions published on the control topic and training runs
written through the store's API.

Needs Debian's chromium and chromium-driver (`make browser`). Set
FULMEN_DASHBOARD_SCREENSHOTS to a directory to keep the screenshots (docs/img/ holds them).
"""

from __future__ import annotations

import contextlib
import html
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import openai
import pyarrow as pa
import pytest
from prometheus_client import start_http_server

import fulmen
from fulmen.dashboard import StoreReader, create_app, serve_in_thread
from fulmen.producers import FulmenSettings, InProcessBus, publish_control, version_meta
from fulmen.schemas import (
    Algorithm,
    ArmEvidence,
    ControlEvent,
    ReleaseDecision,
    ServingAck,
    ServingStatus,
    VersionEvent,
)
from fulmen.store import TABLES, LightningStore
from fulmen.streams import AssemblyPolicy, EmbeddedRunner
from fulmen.streams._metrics import WorkerMetrics
from tests.support.openai_server import OpenAIServer

pytestmark = pytest.mark.integration

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
    pytest.skip(
        "Debian's chromium and chromium-driver are not installed (run `make browser`)",
        allow_module_level=True,
    )

from selenium import webdriver  # noqa: E402  (only once the browser is known to be there)
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webelement import WebElement  # noqa: E402
from selenium.webdriver.support import expected_conditions  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

INJECTED = "<script>document.title='pwned'</script><b>bold?</b>"
ROLLOUTS_PER_VERSION = 8


@dataclass(frozen=True)
class Filled:
    store: LightningStore
    url: str
    injected_rollout: str


def _publish(
    version_id: str, parent: str | None, algorithm: Algorithm, recipe: dict[str, str] | None = None
) -> None:
    fulmen.publish_version(
        VersionEvent(
            meta=version_meta(),
            version_id=version_id,
            kind="model",
            target_agent="calc",
            parent_version=parent,
            algorithm=algorithm,
            window_id=None if parent is None else "window-7",
            dataset_hash=None if parent is None else "ab" * 32,
            model_name=version_id,
            metrics={} if parent is None else {"heldout_reward": 0.75},
            recipe=recipe or {},
        )
    )
    fulmen.wait_for_version(version_id, timeout_s=10)


def _arm(version_id: str, episodes: int, mean: float, lower: float, upper: float,
         error_rate: float, latency_s: float, tokens: float) -> ArmEvidence:  # fmt: skip
    return ArmEvidence(
        version_id=version_id, episodes=episodes, mean_reward=mean, reward_lower=lower,
        reward_upper=upper, error_rate=error_rate, latency_mean_s=latency_s, tokens_mean=tokens,
    )  # fmt: skip


def _ack(
    replica: str, version_id: str, status: ServingStatus, detail: str | None = None
) -> ServingAck:
    return ServingAck(
        meta=version_meta(), replica_id=replica, version_id=version_id, model_name=version_id,
        status=status, detail=detail,
    )  # fmt: skip


def _release_canary() -> None:
    """calc-v3 as a canary on 25% beside calc-v2, held once (an unbounded interval) and then
    rolled back by hand with HTML in the reason; two replicas load calc-v2, one fails to load
    calc-v3 and the other unloads it after the rollback."""
    canary = VersionEvent(
        meta=version_meta(), version_id="calc-v3", kind="model", target_agent="calc",
        parent_version="calc-v2", algorithm="rl", window_id="window-8", model_name="calc-v3",
        traffic_share=0.25,
    )  # fmt: skip
    decided = {"target_agent": "calc", "kind": "model", "version_id": "calc-v3"}
    events: list[ControlEvent] = [
        _ack("replica-a", "calc-v2", "loaded"),
        _ack("replica-b", "calc-v2", "loaded"),
        canary,
        _ack("replica-a", "calc-v3", "loaded"),
        _ack("replica-b", "calc-v3", "failed", "CUDA out of memory"),
        ReleaseDecision(
            meta=version_meta(), **decided, action="hold", traffic_share=0.25, automatic=True,
            reason="too few episodes to tell", rule="anytime-valid reward interval",
            arms=[_arm("calc-v3", 12, 0.5, float("-inf"), 0.7, 0.0, 1.5, 400.0),
                  _arm("calc-v2", 11, 0.6, 0.2, 0.9, 0.0, 1.25, 380.0)],
        ),
        ReleaseDecision(
            meta=version_meta(), **decided, to_version="calc-v2", action="rollback",
            traffic_share=0.0, reason=f"canary worse{INJECTED}",
            arms=[_arm("calc-v3", 120, 0.41, 0.33, 0.49, 0.08, 1.9, 512.0),
                  _arm("calc-v2", 118, 0.72, 0.64, 0.8, 0.01, 1.2, 480.0)],
        ),
        _ack("replica-a", "calc-v3", "unloaded"),
    ]  # fmt: skip
    for event in events:
        publish_control(event)


def _run_agent(store: LightningStore, spill: Path) -> None:
    """16 rollouts, 8 under each of two model versions; every 4th divides by zero (a failed
    tool call and a failed rollout); rollout 5 carries HTML in its prompt and in the comment
    of its thumbs down. One undecodable message ends up a dead letter."""
    bus = InProcessBus()
    fulmen.configure(FulmenSettings(producer={"spill_dir": spill, "agent_name": "calc"}), bus=bus)
    runner = EmbeddedRunner(bus, store, policy=AssemblyPolicy(grace_s=0.0))

    @fulmen.tool
    def divide(a: int, b: int) -> float:
        return a / b

    with OpenAIServer() as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="x")

        @fulmen.rollout(task_id=lambda i, a, b: f"{a}/{b}")
        def agent(i: int, a: int, b: int) -> None:
            question = f"What is {a}/{b}?" + (INJECTED if i == 5 else "")
            client.chat.completions.create(
                model="calc",
                messages=[
                    {"role": "system", "content": "You are a careful calculator."},
                    {"role": "user", "content": question},
                ],
            )
            divide(a, b)
            improved = fulmen.resources().model_version == "calc-v2"
            fulmen.emit_reward(1.0 if improved or a % 2 == 0 else 0.0)
            if i == 5:
                fulmen.emit_feedback("down", correction="0", comment=f"wrong{INJECTED}")

        _publish("calc-v1", None, "base")
        for i in range(2 * ROLLOUTS_PER_VERSION):
            if i == ROLLOUTS_PER_VERSION:
                _publish(
                    "calc-v2",
                    "calc-v1",
                    "dpo",
                    {"pairing": "rewards(min_gap=0.5, max_per_task=16)"},
                )
            with contextlib.suppress(ZeroDivisionError):
                agent(i, i % 5, i % 4)
            runner.step()
    _release_canary()
    assert fulmen.get_producer().flush(10)
    fulmen.shutdown()
    bus.append("fulmen.spans", b"k", b"garbage, not an Avro event")
    runner.finish()


def _training_runs(store: LightningStore) -> None:
    """Three trainer jobs: one published calc-v2, one held back by the gate, one failed."""
    start = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    runs = [
        ("run-1", "calc-v2", "published", None, {"heldout_reward": 0.75}),
        ("run-2", "calc-v3", "gate_failed", "held-out reward 0.61 < parent's 0.75", {}),
        ("run-3", "calc-v4", "failed", "EmptyWindow: no episodes in window-9", {}),
    ]
    schema = TABLES["training_runs"]
    columns: dict[str, list[object]] = {name: [] for name in schema.names}
    for index, (run_id, candidate, outcome, reason, metrics) in enumerate(runs):
        row = {
            "run_id": run_id, "agent_name": "calc", "algorithm": "rl",
            "window_id": f"window-{7 + index}", "dataset_hash": "ab" * 32, "episodes": 16,
            "parent_version": "calc-v1" if index == 0 else "calc-v2",
            "candidate_version": candidate, "outcome": outcome, "reason": reason,
            "metrics": list(metrics.items()),
            "started_at": start + timedelta(hours=index),
            "finished_at": start + timedelta(hours=index, seconds=42),
        }  # fmt: skip
        for name, value in row.items():
            columns[name].append(value)
    store.insert("training_runs", pa.Table.from_pydict(columns, schema=schema))


@pytest.fixture(scope="module")
def filled(
    new_store: Callable[[], LightningStore], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Filled]:
    store = new_store()
    _run_agent(store, tmp_path_factory.mktemp("spill"))
    _training_runs(store)
    injected = store.sql(
        f"SELECT DISTINCT rollout_id FROM {store.settings.database}.spans "
        "WHERE position(llm_input_messages, 'pwned') > 0"
    )["rollout_id"].to_pylist()
    assert len(injected) == 1
    app = create_app(StoreReader(store, store.settings.database))
    with serve_in_thread(app) as url:
        yield Filled(store=store, url=url, injected_rollout=injected[0])


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--window-size=1280,900", f"--user-data-dir={tmp_path_factory.mktemp('chromium')}",
    ):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def _screenshot(driver: webdriver.Chrome, name: str, tmp_path: Path) -> None:
    """Save a PNG of the page; also into FULMEN_DASHBOARD_SCREENSHOTS when set."""
    path = tmp_path / name
    assert driver.save_screenshot(str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    keep = os.environ.get("FULMEN_DASHBOARD_SCREENSHOTS")
    if keep:
        shutil.copy(path, Path(keep) / name)


def _follow(browser: webdriver.Chrome, element: WebElement) -> None:
    """Click `element` and wait until the page it leads to replaced this one: read before
    that, an element of the old page goes stale under the test."""
    page = browser.find_element(By.TAG_NAME, "html")
    element.click()
    WebDriverWait(browser, 30).until(expected_conditions.staleness_of(page))


def _texts(driver: webdriver.Chrome, css: str) -> list[str]:
    return [element.text for element in driver.find_elements(By.CSS_SELECTOR, css)]


def test_rollouts_page_lists_and_filters(
    filled: Filled, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    browser.get(f"{filled.url}/rollouts")
    # the 4 failed rollouts raised before their reward: assembled, unscored
    assert browser.find_element(By.ID, "total").text == "16 rollouts (4 unscored)"
    rows = browser.find_elements(By.CSS_SELECTOR, "#rollouts tbody tr")
    assert len(rows) == 16
    statuses = _texts(browser, "#rollouts tbody td:nth-child(7)")
    assert statuses.count("failed") == 4  # i % 4 == 0: a division by zero
    assert statuses.count("succeeded") == 12
    rewards = _texts(browser, "#rollouts tbody td:nth-child(8)")
    assert rewards.count("unscored") == 4  # not 0.000
    assert set(_texts(browser, "#rollouts tbody td:nth-child(6)")) == {"calc-v1", "calc-v2"}
    _screenshot(browser, "dashboard-rollouts.png", tmp_path)

    Select(browser.find_element(By.ID, "f-status")).select_by_value("failed")
    browser.find_element(By.ID, "f-version").send_keys("calc-v2")
    _follow(browser, browser.find_element(By.ID, "apply"))
    assert browser.find_element(By.ID, "total").text == "2 rollouts (2 unscored)"
    assert set(_texts(browser, "#rollouts tbody td:nth-child(7)")) == {"failed"}
    assert "status=failed" in browser.current_url

    browser.get(f"{filled.url}/rollouts?min_reward=1&version=calc-v1")
    rewards = _texts(browser, "#rollouts tbody td:nth-child(8)")
    assert rewards == ["1.000"] * 3  # a in (2, 0, 2) of rollouts 2, 5 and 7

    browser.get(f"{filled.url}/rollouts?page_size=5&page=4")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#rollouts tbody tr")) == 1
    assert (
        browser.find_element(By.ID, "prev")
        .get_attribute("href")
        .endswith("rollouts?page=3&page_size=5")
    )


def test_bad_filters_answer_400_with_the_reason(filled: Filled, browser: webdriver.Chrome) -> None:
    browser.get(f"{filled.url}/rollouts?min_reward=lots")
    assert browser.find_element(By.ID, "error").text == (
        "bad filter: min_reward must be a number, not 'lots'"
    )
    for query, reason in [
        ("status=exploded", "status must be one of"),
        ("since=yesterday", "since must be an ISO 8601 time"),
        ("min_reward=2&max_reward=1", "min_reward 2.0 is above max_reward 1.0"),
        ("agnet=calc", "unknown parameter 'agnet'"),
        ("page=0", "page must be between 1 and"),
    ]:
        response = httpx.get(f"{filled.url}/rollouts?{query}")
        assert response.status_code == 400, query
        assert reason in html.unescape(response.text), query
    assert httpx.get(f"{filled.url}/rewards?bucket=week").status_code == 400
    assert httpx.get(f"{filled.url}/rollouts/no-such-rollout").status_code == 404


def test_span_tree_shows_prompts_responses_tools_and_rewards_as_text(
    filled: Filled, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    browser.get(f"{filled.url}/rollouts")
    _follow(browser, browser.find_element(By.LINK_TEXT, filled.injected_rollout))
    assert browser.find_element(By.ID, "rollout-id").text == filled.injected_rollout
    tree = browser.find_element(By.ID, "span-tree-1")
    root = tree.find_element(By.CSS_SELECTOR, ":scope > li.span")
    assert root.find_element(By.TAG_NAME, "summary").text.startswith("fulmen.rollout")
    children = root.find_elements(By.CSS_SELECTOR, ":scope > ul > li.span")
    names = [child.find_element(By.TAG_NAME, "b").text for child in children]
    assert names == ["chat calc-v1", "execute_tool divide"]  # the model of the version in force
    prompts = _texts(browser, ".message.prompt pre")
    assert prompts == ["You are a careful calculator.", f"What is 0/1?{INJECTED}"]
    assert _texts(browser, ".message.response pre") == ["2 + 2 = 4"]
    assert _texts(browser, ".tool-arguments") == ['{"a": 0, "b": 1}']
    assert _texts(browser, ".tool-result") == ["0.0"]
    assert "reward = 1" in browser.find_element(By.ID, "rollout-rewards").text
    feedback = browser.find_element(By.ID, "feedback-1").text
    assert "down" in feedback
    assert "by human on the answer" in feedback
    assert f"wrong{INJECTED}" in feedback
    assert _texts(browser, ".correction") == ["0"]
    # The injected markup is shown as text, never run or rendered.
    assert browser.title.startswith("Rollout ")
    assert browser.find_elements(By.XPATH, "//pre//script | //pre//b | //li//i//b") == []
    _screenshot(browser, "dashboard-rollout.png", tmp_path)


def test_versions_show_lineage_and_training_runs(
    filled: Filled, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    browser.get(f"{filled.url}/versions")
    _screenshot(browser, "dashboard-versions.png", tmp_path)
    rows = {
        row.find_element(By.CSS_SELECTOR, ".version").text: row
        for row in browser.find_elements(By.CSS_SELECTOR, "#versions tbody tr")
    }
    assert set(rows) == {"calc-v1", "calc-v2", "calc-v3"}
    parent = rows["calc-v2"].find_element(By.CSS_SELECTOR, "td:nth-child(5) a")
    assert parent.text == "calc-v1"
    assert parent.get_attribute("href").endswith("#v-calc-v1")
    assert "heldout_reward=0.75" in rows["calc-v2"].text
    algorithm = rows["calc-v2"].find_element(By.CSS_SELECTOR, "td:nth-child(7)").text
    assert algorithm.splitlines() == ["dpo", "pairing: rewards(min_gap=0.5, max_per_task=16)"]
    assert len(browser.find_elements(By.CSS_SELECTOR, "#lineage path[marker-end]")) == 2
    outcomes = _texts(browser, "#runs tbody td:nth-child(5)")
    assert outcomes == ["failed", "gate_failed", "published"]  # newest first
    reasons = _texts(browser, "#runs tbody td:nth-child(11)")
    assert reasons[:2] == [
        "EmptyWindow: no episodes in window-9",
        "held-out reward 0.61 < parent's 0.75",
    ]


def test_versions_show_canary_decisions_with_evidence_and_serving_replicas(
    filled: Filled, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    browser.get(f"{filled.url}/versions")
    release = {
        row.find_element(By.CSS_SELECTOR, ".version").text: row.find_element(
            By.CSS_SELECTOR, "td:nth-child(6)"
        )
        for row in browser.find_elements(By.CSS_SELECTOR, "#versions tbody tr")
    }
    assert release["calc-v2"].text == "100%"
    assert release["calc-v3"].text == "canary 25% → rolled back"
    outcome = release["calc-v3"].find_element(By.CSS_SELECTOR, ".release-rollback a")
    assert outcome.get_attribute("href").endswith("#release-calc-v3")
    node = browser.find_element(By.CSS_SELECTOR, '#lineage circle[data-version="calc-v3"]')
    assert node.get_attribute("fill") == "#b42318"  # rolled back: red
    assert "canary 25% · rolled back" in browser.find_element(By.ID, "lineage").text

    section = browser.find_element(By.ID, "release-calc-v3")
    browser.execute_script("arguments[0].scrollIntoView()", section)
    _screenshot(browser, "dashboard-releases.png", tmp_path)
    decisions = section.find_elements(By.CSS_SELECTOR, ".decision")
    assert [d.get_attribute("data-action") for d in decisions] == ["rollback", "hold"]
    assert _texts(browser, "#release-calc-v3 .how") == ["by hand", "automatic"]
    assert "target runs calc-v2" in decisions[0].text
    assert "stays on 25% of rollouts" in decisions[1].text
    assert "anytime-valid reward interval" in decisions[1].text
    # The hostile reason is text: the page's title is untouched and nothing was rendered.
    assert _texts(browser, "#release-calc-v3 .reason") == [
        f"canary worse{INJECTED}",
        "too few episodes to tell",
    ]
    assert browser.title == "Versions · Fulmen"
    assert browser.find_elements(By.XPATH, "//p[@class='reason']//*") == []
    arms = [
        [cell.text for cell in row.find_elements(By.TAG_NAME, "td")]
        for row in decisions[0].find_elements(By.CSS_SELECTOR, "tbody tr")
    ]
    assert arms == [
        ["canary", "calc-v3", "120", "0.410", "[0.330, 0.490]", "8.0%", "1.90 s", "512.0"],
        ["baseline", "calc-v2", "118", "0.720", "[0.640, 0.800]", "1.0%", "1.20 s", "480.0"],
    ]
    held = decisions[1].find_element(By.CSS_SELECTOR, "tbody tr td:nth-child(5)")
    assert held.text == "[-∞, 0.700]"
    # The latest decision's arms as an interval plot, the canary first.
    assert len(section.find_elements(By.CSS_SELECTOR, "svg.intervals g.arm")) == 2

    serving = {
        row.find_element(By.TAG_NAME, "td").text: [
            cell.text for cell in row.find_elements(By.TAG_NAME, "td")[3:6]
        ]
        for row in browser.find_elements(By.CSS_SELECTOR, "#serving tbody tr")
    }
    assert serving == {
        "calc-v2": ["replica-a, replica-b", "-", "-"],
        "calc-v3": ["-", "replica-b (CUDA out of memory)", "replica-a"],
    }


def test_rewards_chart_has_a_line_per_version(
    filled: Filled, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    browser.get(f"{filled.url}/rewards")
    _screenshot(browser, "dashboard-rewards.png", tmp_path)
    chart = browser.find_element(By.ID, "reward-chart")
    assert len(chart.find_elements(By.TAG_NAME, "polyline")) == 2
    cells = [row.split(" ")[-3:] for row in _texts(browser, "#reward-table tbody tr")]
    by_version = {version: (count, mean) for version, count, mean in cells}
    # Failed rollouts emit no reward. calc-v1: a in (1, 2, 3, 0, 1, 2), even a → 1; calc-v2: 1
    assert by_version == {"calc-v1": ("6", "0.500"), "calc-v2": ("6", "1.000")}


def test_health_shows_dead_letters_and_worker_lag(
    filled: Filled, browser: webdriver.Chrome
) -> None:
    browser.get(f"{filled.url}/health")
    assert browser.find_element(By.ID, "dlq-total").text == "1"
    assert _texts(browser, "#dlq tbody td:nth-child(2)") == ["bad_magic"]
    assert "not configured" in browser.find_element(By.ID, "workers-not-configured").text

    metrics = WorkerMetrics()  # a worker's real metrics, served by prometheus_client
    metrics.lag.labels("fulmen.spans", "0").set(40)
    metrics.lag.labels("fulmen.rewards", "1").set(2)
    metrics.dead_letters.labels("bad_magic").inc()
    server, thread = start_http_server(0, addr="127.0.0.1", registry=metrics.registry)
    try:
        worker_url = f"http://127.0.0.1:{server.server_port}/metrics"
        app = create_app(
            StoreReader(filled.store, filled.store.settings.database),
            worker_metrics=[worker_url, "http://127.0.0.1:9/metrics"],
        )
        with serve_in_thread(app) as url:
            browser.get(f"{url}/health")
            assert _texts(browser, ".worker-lag") == ["42"]
            assert "bad_magic=1" in browser.find_element(By.CSS_SELECTOR, ".worker").text
            assert "unreachable" in browser.find_element(By.CSS_SELECTOR, ".worker.error").text
    finally:
        server.shutdown()
        thread.join(5)
