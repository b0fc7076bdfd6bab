"""The dashboard's parsing and rendering, without a store or a browser."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from urllib.parse import parse_qsl

import pytest

from fulmen.dashboard import BadFilter, RolloutFilter, parse_rollout_filter, parse_worker_metrics
from fulmen.dashboard._pages import _messages
from fulmen.dashboard._rollout_queries import RewardRow, SpanRow
from fulmen.dashboard._tree import span_tree
from fulmen.streams._metrics import WorkerMetrics

T0 = datetime(2026, 5, 1, 12, tzinfo=UTC)


def span_row(span_id: str, parent: str | None) -> SpanRow:
    return SpanRow(
        attempt=1, span_id=span_id, parent_span_id=parent, name=span_id, kind="INTERNAL",
        status_code="OK", status_message="", start_time=T0, duration_ms=1.0, request_model="",
        response_model=None, input_messages="", output_messages="", input_tokens=None,
        output_tokens=None, tool_name="", tool_call_id=None, tool_arguments="", tool_result="",
    )  # fmt: skip


def reward_row(span_id: str | None) -> RewardRow:
    return RewardRow(attempt=1, name="reward", value=1.0, source="programmatic",
                     span_id=span_id, comment=None, emitted_at=T0)  # fmt: skip


def test_filter_parses_and_round_trips() -> None:
    where = parse_rollout_filter(
        [("agent", "calc"), ("status", "failed"), ("min_reward", "0.5"), ("task", " "),
         ("since", "2026-05-01T12:00"), ("until", "2026-05-02T00:00:00+02:00"), ("page", "2")]
    )  # fmt: skip
    assert where == RolloutFilter(
        agent="calc",
        status="failed",
        min_reward=0.5,
        since=datetime(2026, 5, 1, 12, tzinfo=UTC),
        until=datetime(2026, 5, 1, 22, tzinfo=UTC),
        page=2,
    )
    assert parse_rollout_filter(parse_qsl(where.query(page=3))) == replace(where, page=3)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ([("status", "done")], "status must be one of succeeded, failed"),
        ([("max_reward", "nan")], "max_reward must be a finite number"),
        ([("page_size", "1000")], "page_size must be between 1 and 500"),
        ([("agent", "a"), ("agent", "b")], "parameter 'agent' given more than once"),
        ([("until", "2026-05-01"), ("since", "2026-05-02")], "since must be before until"),
        ([("limit", "5")], "unknown parameter 'limit'"),
    ],
)
def test_bad_filters_say_why(params: list[tuple[str, str]], message: str) -> None:
    with pytest.raises(BadFilter, match=message):
        parse_rollout_filter(params)


def test_worker_metrics_are_read_from_prometheus_text() -> None:
    metrics = WorkerMetrics()
    metrics.lag.labels("fulmen.spans", "10").set(5)
    metrics.lag.labels("fulmen.spans", "2").set(7)
    metrics.dead_letters.labels("too_large").inc(3)
    status = parse_worker_metrics("http://w/metrics", metrics.prometheus().decode())
    assert [(p.partition, p.lag) for p in status.lag] == [("2", 7.0), ("10", 5.0)]
    assert status.total_lag == 12
    assert status.dead_letters["too_large"] == 3
    assert status.store_available is True


def test_messages_of_any_shape_become_text() -> None:
    assert _messages('[{"role": "user", "content": [{"type": "text", "text": "hi"}]}]') == [
        ("user", "hi")
    ]
    assert _messages("not json") == [("raw", "not json")]
    assert _messages("") == []
    calls = _messages('[{"role": "assistant", "content": null, "tool_calls": [{"id": "c"}]}]')
    assert calls[0][0] == "assistant"
    assert calls[0][1].startswith("tool calls: ")


def test_span_tree_nests_by_parent_and_keeps_orphans() -> None:
    spans = [span_row("root", None), span_row("child", "root"), span_row("orphan", "lost")]
    roots = span_tree(spans, [reward_row("child"), reward_row(None)])
    assert [node.span.span_id for node in roots] == ["root", "orphan"]
    assert [child.span.span_id for child in roots[0].children] == ["child"]
    assert [r.value for r in roots[0].children[0].rewards] == [1.0]
