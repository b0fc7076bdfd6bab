"""The dashboard's pages, rendered from typed rows to HTML (every user value escaped)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from fulmen.dashboard._charts import reward_chart
from fulmen.dashboard._feedback import feedback_list
from fulmen.dashboard._filters import BUCKETS, ROLLOUT_STATUSES, RewardQuery, RolloutFilter
from fulmen.dashboard._html import (
    Cell,
    Html,
    badge,
    cell,
    esc,
    join,
    link,
    page,
    pairs,
    path_part,
    table,
)
from fulmen.dashboard._queries import (
    DeadLetterCount,
    DeadLetterRow,
    RewardPoint,
    VersionRow,
)
from fulmen.dashboard._rollout_queries import (
    EpisodeInfo,
    FilterChoices,
    RewardRow,
    RolloutDetail,
    RolloutPage,
    RolloutRow,
)
from fulmen.dashboard._tree import SpanNode, span_tree
from fulmen.dashboard._worker_metrics import WorkerStatus


def _reward(row: RolloutRow) -> Cell:
    """The episode's reward; "unscored" when it was assembled without one (not a 0)."""
    if row.scored is False:
        return Html('<span class="unscored" title="no reward reached this episode">unscored</span>')
    return row.reward


def _rollout_link(row: RolloutRow) -> Html:
    return link(f"/rollouts/{path_part(row.rollout_id)}", row.rollout_id)


def _input(name: str, label: str, value: object, *, datalist: str | None = None) -> Html:
    text = "" if value is None else str(value)
    listed = f' list="{esc(datalist)}"' if datalist else ""
    return Html(
        f'<label>{esc(label)}<input name="{esc(name)}" id="f-{esc(name)}" '
        f'value="{esc(text)}"{listed}></label>'
    )


def _select(name: str, label: str, options: Sequence[str], chosen: str | None, *,
            blank: str | None) -> Html:  # fmt: skip
    items = [f'<option value="">{esc(blank)}</option>'] if blank is not None else []
    items += [
        f'<option value="{esc(option)}"{" selected" if option == chosen else ""}>'
        f"{esc(option)}</option>"
        for option in options
    ]
    return Html(
        f'<label>{esc(label)}<select name="{esc(name)}" id="f-{esc(name)}">'
        f"{''.join(items)}</select></label>"
    )


def _datalist(list_id: str, values: Sequence[str]) -> Html:
    options = "".join(f'<option value="{esc(value)}">' for value in values)
    return Html(f'<datalist id="{esc(list_id)}">{options}</datalist>')


def _tool_calls(row: RolloutRow) -> str | None:
    if row.num_tool_calls is None:
        return None
    return f"{row.num_tool_calls} ({row.num_tool_errors} failed)"


def rollouts_page(found: RolloutPage, where: RolloutFilter, choices: FilterChoices) -> Html:
    """/rollouts: the filter form, the matching rollouts (newest first) and paging."""
    since = where.since.isoformat() if where.since else None
    until = where.until.isoformat() if where.until else None
    form = Html(
        '<form class="filters" method="get" action="/rollouts" id="filters">'
        + _input("agent", "agent", where.agent, datalist="agents")
        + _select("status", "status", ROLLOUT_STATUSES, where.status, blank="any")
        + _input("task", "task contains", where.task)
        + _input("version", "model version", where.version, datalist="versions")
        + _input("min_reward", "reward ≥", where.min_reward)
        + _input("max_reward", "reward ≤", where.max_reward)
        + _input("since", "started since (UTC)", since)
        + _input("until", "started before (UTC)", until)
        + '<button type="submit" id="apply">Filter</button> <a href="/rollouts">clear</a>'
        + _datalist("agents", choices.agents)
        + _datalist("versions", choices.versions)
        + "</form>"
    )
    rows = [
        [
            row.started_at,
            _rollout_link(row),
            row.attempt,
            row.agent_name,
            row.task_id,
            row.model_version,
            badge(row.status),
            _reward(row),
            row.num_spans,
            row.num_llm_calls,
            None
            if row.num_tool_calls is None
            else f"{row.num_tool_calls} ({row.num_tool_errors} failed)",
        ]
        for row in found.rows
    ]
    headers = ["started (UTC)", "rollout", "attempt", "agent", "task", "model version",
               "status", "reward", "spans", "LLM calls", "tool calls"]  # fmt: skip
    pages = max(1, -(-found.total // where.page_size))
    unscored = f" ({found.unscored} unscored)" if found.unscored else ""
    pager = [f'<span id="total">{found.total} rollouts{unscored}</span>',
             f"<span>page {where.page} of {pages}</span>"]  # fmt: skip
    if where.page > 1:
        pager.append(link(f"/rollouts?{where.query(page=where.page - 1)}", "← newer", id="prev"))
    if where.page < pages:
        pager.append(link(f"/rollouts?{where.query(page=where.page + 1)}", "older →", id="next"))
    body = Html(
        "<h1>Rollouts</h1>"
        + form
        + f'<div class="pager">{"".join(pager)}</div>'
        + table(headers, rows, table_id="rollouts", empty="No rollouts match these filters.")
    )
    return page("Rollouts", "rollouts", body)


def _messages(text: str) -> list[tuple[str, str]]:
    """(role, text) of each message the SDK recorded as JSON; anything else as one raw
    message. Tool calls requested by the model are shown as their JSON."""
    if not text:
        return []
    try:
        data: Any = json.loads(text)
    except ValueError:
        return [("raw", text)]
    if not isinstance(data, list):
        return [("raw", text)]
    shown: list[tuple[str, str]] = []
    for message in data:
        if not isinstance(message, dict):
            shown.append(("raw", json.dumps(message)))
            continue
        content = message.get("content")
        if isinstance(content, list):  # content parts: keep their text
            content = "\n".join(
                str(part.get("text", "")) if isinstance(part, dict) else str(part)
                for part in content
            )
        parts = [] if content in (None, "") else [str(content)]
        if message.get("tool_calls"):
            parts.append("tool calls: " + json.dumps(message["tool_calls"], indent=1))
        shown.append((str(message.get("role", "?")), "\n".join(parts)))
    return shown


def _message_block(title: str, text: str, css: str) -> Html:
    messages = _messages(text)
    if not messages:
        return Html("")
    items = "".join(
        f'<div class="message {esc(css)}"><span class="role">{esc(role)}</span>'
        f"<pre>{esc(content)}</pre></div>"
        for role, content in messages
    )
    return Html(f"<div><b>{esc(title)}</b>{items}</div>")


def _reward_badges(rewards: Sequence[RewardRow]) -> Html:
    return join(
        Html(
            f'<span class="reward" title="{esc(reward.source)}">'
            f"{esc(reward.name)} = {reward.value:.3g}</span>"
            + (f" <i>{esc(reward.comment)}</i>" if reward.comment else "")
        )
        for reward in rewards
    )


def _span_item(node: SpanNode) -> Html:
    span = node.span
    summary = (
        f'<summary><b>{esc(span.name)}</b> <span class="kind">{esc(span.kind)}</span> '
        f"{badge(span.status_code.lower(), 'code')} "
        f'<span class="muted">{span.duration_ms:.1f} ms</span> {_reward_badges(node.rewards)}'
        "</summary>"
    )
    details: list[str] = []
    if span.status_message:
        details.append(f'<div class="error-text">{esc(span.status_message)}</div>')
    if span.request_model:
        tokens = f"{span.input_tokens or 0} → {span.output_tokens or 0} tokens"
        details.append(
            f'<div class="muted">model {esc(span.request_model)}'
            f"{' (' + esc(span.response_model) + ')' if span.response_model else ''}, "
            f"{esc(tokens)}</div>"
        )
        details.append(_message_block("prompt", span.input_messages, "prompt"))
        details.append(_message_block("response", span.output_messages, "response"))
    if span.tool_name:
        call = f" (call {esc(span.tool_call_id)})" if span.tool_call_id else ""
        details.append(
            f"<div><b>tool {esc(span.tool_name)}</b>{call}"
            f'<pre class="tool-arguments">{esc(span.tool_arguments)}</pre>'
            f'→<pre class="tool-result">{esc(span.tool_result)}</pre></div>'
        )
    children = "".join(_span_item(child) for child in node.children)
    nested = f'<ul class="tree">{children}</ul>' if children else ""
    return Html(
        f'<li class="span" data-span-id="{esc(span.span_id)}"><details open>{summary}'
        f"{''.join(details)}</details>{nested}</li>"
    )


def _attempt_section(detail: RolloutDetail, row: RolloutRow) -> Html:
    spans = [span for span in detail.spans if span.attempt == row.attempt]
    rewards = [reward for reward in detail.rewards if reward.attempt == row.attempt]
    episode: EpisodeInfo | None = next(
        (info for info in detail.episodes if info.attempt == row.attempt), None
    )
    roots = span_tree(spans, rewards)
    span_ids = {span.span_id for span in spans}
    overall = [reward for reward in rewards if reward.span_id not in span_ids]
    facts: list[tuple[str, Cell]] = [
        ("agent", row.agent_name),
        ("task", row.task_id),
        ("model version", row.model_version),
        ("status", badge(row.status)),
        ("started", row.started_at),
        ("finished", row.finished_at),
        ("reward", _reward(row)),
    ]
    if episode is not None:
        facts += [
            ("episode revision", episode.revision),
            ("rewards", pairs(episode.rewards)),
            ("credit assignment", episode.credit_assignment),
        ]
    if row.error:
        facts.append(("error", row.error))
    items = "".join(
        f"<div><dt>{esc(name)}</dt><dd>{cell(value)}</dd></div>" for name, value in facts
    )
    parts = [
        f'<h2>Attempt {row.attempt}</h2><dl class="facts" id="attempt-{row.attempt}">{items}</dl>'
    ]
    if row.input is not None:
        parts.append(f'<div><b>input</b><pre id="rollout-input">{esc(row.input)}</pre></div>')
    if overall:
        parts.append(f'<p id="rollout-rewards">rollout rewards: {_reward_badges(overall)}</p>')
    feedback = [item for item in detail.feedback if item.attempt == row.attempt]
    parts.append(feedback_list(feedback, row.attempt))
    tree = "".join(_span_item(root) for root in roots)
    parts.append(
        f'<ul class="tree root" id="span-tree-{row.attempt}">{tree}</ul>'
        if tree
        else '<p class="empty">No spans recorded.</p>'
    )
    return Html("".join(parts))


def rollout_page(rollout_id: str, detail: RolloutDetail) -> Html:
    """/rollouts/{id}: each attempt's facts, input, rewards, feedback and span tree, with the
    LLM calls' prompt and response messages and the tool calls' arguments and results."""
    sections = "".join(_attempt_section(detail, row) for row in detail.attempts)
    body = Html(
        f"<p>{link('/rollouts', '← rollouts')}</p>"
        f'<h1>Rollout <code id="rollout-id">{esc(rollout_id)}</code></h1>{sections}'
    )
    return page(f"Rollout {rollout_id}", "rollouts", body)


def rewards_page(
    points: Sequence[RewardPoint],
    query: RewardQuery,
    names: Sequence[str],
    published: Sequence[VersionRow],
) -> Html:
    """/rewards: mean reward by model version over time (chart and numbers)."""
    form = Html(
        '<form class="filters" method="get" action="/rewards" id="filters">'
        + _select("name", "reward", sorted({*names, query.name}), query.name, blank=None)
        + _input("agent", "agent", query.agent)
        + _select("bucket", "per", BUCKETS, query.bucket, blank=None)
        + '<button type="submit" id="apply">Show</button></form>'
    )
    rows: list[list[Cell]] = [
        [point.bucket, point.agent_name, point.model_version, point.count, point.mean]
        for point in points
    ]
    body = Html(
        f"<h1>Reward by version</h1>{form}"
        + reward_chart(points, published)
        + table(
            [f"{query.bucket} (UTC)", "agent", "model version", "rewards", "mean"],
            rows,
            table_id="reward-table",
            empty=f"No {query.name!r} rewards recorded.",
        )
    )
    return page("Rewards", "rewards", body)


def _worker_section(status: WorkerStatus) -> Html:
    if status.error is not None:
        return Html(
            f'<div class="worker error"><b>{esc(status.url)}</b>: unreachable '
            f"({esc(status.error)})</div>"
        )
    available = {True: "yes", False: "NO", None: "unknown"}[status.store_available]
    lag_rows: list[list[Cell]] = [[p.topic, p.partition, int(p.lag)] for p in status.lag]
    return Html(
        f'<div class="worker"><h3>{esc(status.url)}</h3>'
        f'<p>total lag <b class="worker-lag">{int(status.total_lag)}</b> messages · '
        f"events in {cell(status.events_in)} · buffered rollouts "
        f"{cell(status.buffered_rollouts)} · store available {esc(available)} · "
        f"dead letters {pairs(status.dead_letters) or '0'}</p>"
        + table(["topic", "partition", "lag"], lag_rows, table_id="lag", empty="No partitions.")
        + "</div>"
    )


DLQ_HEADERS = ("topic", "problem", "count", "latest (UTC)")
RECENT_HEADERS = ("received (UTC)", "topic", "partition", "offset", "problem", "detail", "bytes")


def health_page(
    counts: Sequence[DeadLetterCount],
    recent: Sequence[DeadLetterRow],
    workers: Sequence[WorkerStatus] | None,
) -> Html:
    """/health: dead letters in the store, and the workers' lag when their metrics URLs
    are configured (`workers` None: not configured)."""
    total = sum(count.count for count in counts)
    count_rows: list[list[Cell]] = [
        [c.topic, c.problem, Html(f'<span class="dlq-count">{c.count}</span>'), c.last_received_at]
        for c in counts
    ]
    recent_rows: list[list[Cell]] = [
        [d.received_at, d.topic, d.partition, d.offset, d.problem, d.detail, d.size_bytes]
        for d in recent
    ]
    if workers is None:
        worker_html = Html(
            '<p id="workers-not-configured">Worker lag: not configured. Name the workers\' '
            "metrics with <code>fulmen dashboard --worker-metrics "
            "http://host:6066/metrics</code>.</p>"
        )
    else:
        worker_html = join(_worker_section(status) for status in workers)
    body = Html(
        "<h1>Health</h1><h2>Stream workers</h2>"
        + worker_html
        + f'<h2>Dead letters: <span id="dlq-total">{total}</span></h2>'
        + table(
            ["topic", "problem", "count", "latest (UTC)"],
            count_rows,
            table_id="dlq",
            empty="No dead letters.",
        )
        + "<h2>Latest dead letters</h2>"
        + table(
            ["received (UTC)", "topic", "partition", "offset", "problem", "detail", "bytes"],
            recent_rows,
            table_id="dlq-recent",
            empty="No dead letters.",
        )
    )
    return page("Health", "health", body)


def error_page(status: int, message: str) -> Html:
    """A page for a request that could not be answered: `status` and why."""
    body = Html(f'<h1>{status}</h1><p class="error" id="error">{esc(message)}</p>')
    return page(f"Error {status}", "", body)
