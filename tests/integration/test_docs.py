"""The examples in docs/ run as written."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

import fulmen
from fulmen.producers import FulmenSettings, InProcessBus
from fulmen.schemas import Feedback, Reward, RolloutEvent, SingleObjectCodec, Span
from tests.support.events import llm_span
from tests.support.openai_server import OpenAIServer
from tests.support.sdk import emitted

DOCS = Path(__file__).resolve().parents[2] / "docs"


def python_blocks(page: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", (DOCS / page).read_text(), flags=re.DOTALL)


@pytest.fixture
def bus(tmp_path: Path) -> Iterator[InProcessBus]:
    bus = InProcessBus()
    fulmen.configure(FulmenSettings(producer={"spill_dir": tmp_path}), bus=bus)
    yield bus
    fulmen.shutdown()


def test_instrumented_agent_in_producers_md(
    bus: InProcessBus, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    agent = python_blocks("producers.md")[0]
    with OpenAIServer() as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        exec(compile(agent, "docs/producers.md", "exec"), {"__name__": "docs_example"})
    assert capsys.readouterr().out.strip() == "2 + 2 = 4"
    events = emitted(bus)
    llm_spans = [e for e in events if isinstance(e, Span) and e.llm is not None]
    assert len(llm_spans) == 1
    assert [e.value for e in events if isinstance(e, Reward)] == [1.0]
    assert [e.status for e in events if isinstance(e, RolloutEvent)] == [None, "succeeded"]


def test_feedback_in_producers_md(bus: InProcessBus) -> None:
    exec(compile(python_blocks("producers.md")[1], "docs/producers.md", "exec"), {})
    feedback = [e for e in emitted(bus) if isinstance(e, Feedback)]
    assert [(f.thumbs_up, f.correction, f.source) for f in feedback] == [
        (False, "4", "judge"),
        (True, None, "human"),
    ]
    assert feedback[1].meta.rollout_id == "0690e5b2-…"


def test_otel_setup_in_producers_md() -> None:
    exec(compile(python_blocks("producers.md")[2], "docs/producers.md", "exec"), {})


def test_delivery_check_in_producers_md(
    bus: InProcessBus, capsys: pytest.CaptureFixture[str]
) -> None:
    check = python_blocks("producers.md")[3]
    exec(compile(check, "docs/producers.md", "exec"), {})  # nothing lost: prints nothing
    assert capsys.readouterr().out == ""
    fulmen.get_producer().emit(llm_span(payload=1_100_000))  # over max_event_bytes
    exec(compile(check, "docs/producers.md", "exec"), {})
    assert capsys.readouterr().out.startswith("lost 1: 1 oversize, 0 failed, 0 dropped;")


def test_extension_points_in_integrations_md(bus: InProcessBus) -> None:
    credit, judge = python_blocks("integrations.md")
    scope: dict[str, object] = {}
    exec(compile(credit, "docs/integrations.md", "exec"), scope)
    assert str(getattr(scope["credit"], "name", "")).startswith("length_penalty")
    exec(compile(judge, "docs/integrations.md", "exec"), {})
    assert fulmen.get_producer().flush(5)
    codec = SingleObjectCodec()
    rewards = [
        codec.decode(m.value, topic="fulmen.rewards")
        for m in bus.read("fulmen.rewards", 0, max_messages=10, timeout_s=0)
    ]
    assert [(r.name, r.source, r.value) for r in rewards if isinstance(r, Reward)] == [
        ("judge", "judge", 0.8)
    ]


def test_store_example_in_store_md(tmp_path: Path) -> None:
    """Run in a process of its own: chDB opens one data directory per process."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", python_blocks("store.md")[0]],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    name, rows = done.stdout.split()
    assert name.startswith("window-")
    assert name.endswith(".parquet")
    assert rows == "0"


def test_episode_example_in_concepts_md(capsys: pytest.CaptureFixture[str]) -> None:
    exec(compile(python_blocks("concepts.md")[0], "docs/concepts.md", "exec"), {})
    printed = re.search(r"prints\n\n```\n(.*?)```", (DOCS / "concepts.md").read_text(), re.DOTALL)
    assert printed is not None
    assert capsys.readouterr().out == printed[1]


def test_embedded_agent_in_quickstart_md(tmp_path: Path) -> None:
    """Run in a process of its own: chDB opens one data directory per process."""
    import json
    import os
    import subprocess
    import sys

    with OpenAIServer() as server:
        done = subprocess.run(
            [sys.executable, "-c", python_blocks("quickstart.md")[0]],
            cwd=tmp_path,
            env={**os.environ, "OPENAI_BASE_URL": server.base_url},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout.strip().replace("'", '"'))
    assert rows == [{"episodes": 3, "reward": 1.0}]


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    kept = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return kept.replace(" ", "-")


def _without_code(text: str) -> str:
    return re.sub(r"```.*?```", "", text, flags=re.DOTALL)


@pytest.mark.parametrize(
    "page",
    [DOCS.parent / "README.md", *sorted(DOCS.glob("*.md"))],
    ids=lambda page: page.name,
)
def test_links_resolve(page: Path) -> None:
    """Every relative link (and image) of a page names a file that exists, and every
    `#anchor` a heading of the page it points to."""
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", _without_code(page.read_text())):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            broken.append(target)
        elif anchor and linked.suffix == ".md":
            headings = re.findall(r"^#+ (.+)$", _without_code(linked.read_text()), re.MULTILINE)
            if anchor not in {_slug(h) for h in headings}:
                broken.append(target)
    assert broken == [], f"{page.name}: broken links {broken}"
