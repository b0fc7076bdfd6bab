"""Inline SVG charts: reward by version over time, the versions' lineage, and the reward
intervals of a canary's arms."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta

from fulmen.dashboard._html import Html, esc, interval, path_part, when
from fulmen.dashboard._queries import RewardPoint, VersionRow
from fulmen.dashboard._release_queries import OUTCOMES, DecisionRow, arm_role
from fulmen.schemas import ReleaseAction

_COLORS = ("#175cd3", "#16794c", "#b54708", "#b42318", "#6941c6", "#0e7090", "#c11574", "#4e5ba6")
_WIDTH, _HEIGHT = 760, 280
_LEFT, _RIGHT, _TOP, _BOTTOM = 56, 16, 16, 40


def reward_chart(points: Sequence[RewardPoint], published: Sequence[VersionRow]) -> Html:
    """Mean reward over time, one line per (agent, model version), with a dashed marker
    where a version was published inside the time range. Hovering a point shows its
    numbers."""
    if not points:
        return Html('<p class="empty" id="reward-chart-empty">No rewards recorded yet.</p>')
    series: dict[str, list[RewardPoint]] = {}
    for point in points:
        series.setdefault(f"{point.agent_name} · {point.model_version}", []).append(point)
    start, end = min(p.bucket for p in points), max(p.bucket for p in points)
    if start == end:
        start, end = start - timedelta(minutes=30), end + timedelta(minutes=30)
    low, high = min(p.mean for p in points), max(p.mean for p in points)
    if high - low < 1e-9:
        low, high = low - 0.5, high + 0.5
    low, high = low - (high - low) * 0.05, high + (high - low) * 0.05

    def x(moment: datetime) -> float:
        span = (end - start).total_seconds()
        return _LEFT + (moment - start).total_seconds() / span * (_WIDTH - _LEFT - _RIGHT)

    def y(value: float) -> float:
        return _TOP + (high - value) / (high - low) * (_HEIGHT - _TOP - _BOTTOM)

    parts: list[str] = [_axes(low, high, start, end, y)]
    shown = [version for version in published if start <= version.published_at <= end]
    for index, version in enumerate(shown):
        at = x(version.published_at)
        right_half = at > _WIDTH / 2  # labels grow away from the edge, staggered downwards
        anchor = 'text-anchor="end"' if right_half else ""
        parts.append(
            f'<line x1="{at:.1f}" x2="{at:.1f}" y1="{_TOP}" y2="{_HEIGHT - _BOTTOM}" '
            'stroke="#98a2b3" stroke-dasharray="4 3"/>'
            f'<text x="{at - 3 if right_half else at + 3:.1f}" y="{_TOP + 10 + 13 * (index % 4)}" '
            f"{anchor}>{esc(version.version_id)} published</text>"
        )
    legend: list[str] = []
    for index, (name, line) in enumerate(series.items()):
        color = _COLORS[index % len(_COLORS)]
        coords = " ".join(f"{x(p.bucket):.1f},{y(p.mean):.1f}" for p in line)
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{coords}"/>')
        for p in line:
            tip = f"{name}, {when(p.bucket)}: mean {p.mean:.3f} over {p.count} rewards"
            parts.append(
                f'<circle cx="{x(p.bucket):.1f}" cy="{y(p.mean):.1f}" r="3.5" fill="{color}">'
                f"<title>{esc(tip)}</title></circle>"
            )
        legend.append(f'<span style="color:{color}" class="series">■ {esc(name)}</span>')
    return Html(
        f'<svg id="reward-chart" viewBox="0 0 {_WIDTH} {_HEIGHT}" width="{_WIDTH}" '
        f'height="{_HEIGHT}" role="img" aria-label="mean reward by version over time">'
        f'{"".join(parts)}</svg><p class="legend">{"  ".join(legend)}</p>'
    )


def _axes(
    low: float, high: float, start: datetime, end: datetime, y: Callable[[float], float]
) -> str:
    """Axes, grid lines and labels of the reward chart; `y` maps a reward to a pixel row."""
    bottom, right = _HEIGHT - _BOTTOM, _WIDTH - _RIGHT
    parts = [
        f'<line x1="{_LEFT}" x2="{_LEFT}" y1="{_TOP}" y2="{bottom}" stroke="#667085"/>',
        f'<line x1="{_LEFT}" x2="{right}" y1="{bottom}" y2="{bottom}" stroke="#667085"/>',
        f'<text x="{_LEFT}" y="{bottom + 16}">{esc(when(start)[:16])}</text>',
        f'<text x="{right}" y="{bottom + 16}" text-anchor="end">{esc(when(end)[:16])}</text>',
        f'<text x="{_LEFT}" y="{bottom + 32}">UTC</text>',
    ]
    for step in range(5):
        value = low + (high - low) * step / 4
        at = y(value)
        parts.append(
            f'<line x1="{_LEFT - 4}" x2="{right}" y1="{at:.1f}" y2="{at:.1f}" stroke="#eaecf0"/>'
            f'<text x="{_LEFT - 6}" y="{at + 4:.1f}" text-anchor="end">{value:.2f}</text>'
        )
    return "".join(parts)


def lineage_graph(
    versions: Sequence[VersionRow], actions: Mapping[str, ReleaseAction] | None = None
) -> Html:
    """Each version a node, in the order first published, one lane per target agent, an
    arrow from its parent (when the parent is in the store too). A version published again
    (a rollback) is marked with how many times; one first published as a canary says its
    share and, from `actions` (a canary's latest release decision), whether it was promoted,
    held or rolled back (a rolled-back node is red)."""
    if not versions:
        return Html('<p class="empty" id="lineage-empty">No versions published yet.</p>')
    first: dict[str, VersionRow] = {}
    publications: dict[str, int] = {}
    for version in versions:
        first.setdefault(version.version_id, version)
        publications[version.version_id] = publications.get(version.version_id, 0) + 1
    lanes = sorted({version.target_agent or "all agents" for version in first.values()})
    actions = actions or {}
    step, lane_height = 150, 84
    width, height = 60 + step * len(first), 30 + lane_height * len(lanes)
    place: dict[str, tuple[float, float]] = {}
    for index, version in enumerate(first.values()):
        lane = lanes.index(version.target_agent or "all agents")
        place[version.version_id] = (50 + index * step, 40 + lane * lane_height)
    parts = [
        f'<text x="4" y="{40 + lane * lane_height - 18}" class="muted">{esc(name)}</text>'
        for lane, name in enumerate(lanes)
    ]
    for version in first.values():
        if version.parent_version in place:
            (x1, y1), (x2, y2) = place[version.parent_version], place[version.version_id]
            middle = (x1 + x2) / 2
            parts.append(
                f'<path d="M{x1 + 7:.0f},{y1:.0f} C{middle:.0f},{y1:.0f} {middle:.0f},{y2:.0f} '
                f'{x2 - 9:.0f},{y2:.0f}" fill="none" stroke="#667085" '
                'marker-end="url(#arrow)"/>'
            )
    for version_id, (cx, cy) in place.items():
        version = first[version_id]
        again = publications[version_id] - 1
        label = version.algorithm + (f" · published {again + 1} times" if again else "")
        action = actions.get(version_id)
        release = [f"canary {version.traffic_share:.0%}"] if version.traffic_share < 1 else []
        release += [OUTCOMES[action]] if action else []
        fill = "#b42318" if action == "rollback" else "#175cd3"
        parts.append(
            f'<a href="#v-{esc(path_part(version_id))}"><circle cx="{cx:.0f}" cy="{cy:.0f}" '
            f'r="7" fill="{fill}" data-version="{esc(version_id)}">'
            f"<title>{esc(version_id)}</title></circle></a>"
            f'<text x="{cx:.0f}" y="{cy + 20:.0f}" text-anchor="middle">{esc(version_id)}</text>'
            f'<text x="{cx:.0f}" y="{cy + 33:.0f}" text-anchor="middle" class="muted">'
            f"{esc(label)}</text>"
            f'<text x="{cx:.0f}" y="{cy + 46:.0f}" text-anchor="middle" '
            f'class="release-{esc(action or "none")}">{esc(" · ".join(release))}</text>'
        )
    return Html(
        f'<div style="overflow-x:auto"><svg id="lineage" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="version lineage">'
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#667085"/></marker>'
        f"</defs>{''.join(parts)}</svg></div>"
    )


def interval_plot(decision: DecisionRow) -> Html:
    """The reward interval of each arm of `decision` (the canary first) as a bar from its
    lower to its upper end, a dot at the mean; an unbounded end runs to the plot's edge.
    Hovering an arm shows its numbers."""
    arms = decision.arms
    if not arms:
        return Html("")
    width, row, left, right = 520, 26, 150, 20
    height = 24 + row * len(arms)
    finite = [
        value
        for arm in arms
        for value in (arm.reward_lower, arm.mean_reward, arm.reward_upper)
        if math.isfinite(value)
    ] or [0.0]
    low, high = min(finite), max(finite)
    if high - low < 1e-9:
        low, high = low - 0.5, high + 0.5
    low, high = low - (high - low) * 0.05, high + (high - low) * 0.05

    def x(value: float) -> float:
        clamped = min(max(value, low), high) if not math.isnan(value) else low
        return left + (clamped - low) / (high - low) * (width - left - right)

    bottom = row * len(arms) + 4
    parts = [
        f'<line x1="{left}" x2="{width - right}" y1="{bottom}" y2="{bottom}" stroke="#667085"/>',
        f'<text x="{left}" y="{bottom + 14}">{low:.2f}</text>',
        f'<text x="{width - right}" y="{bottom + 14}" text-anchor="end">{high:.2f}</text>',
    ]
    for index, arm in enumerate(arms):
        color = _COLORS[index % len(_COLORS)]
        y = 14 + index * row
        name = f"{arm_role(index)} {arm.version_id}"
        tip = (
            f"{name}: mean {arm.mean_reward:.3f}, interval "
            f"{interval(arm.reward_lower, arm.reward_upper)}, {arm.episodes} episodes"
        )
        parts.append(
            f'<g class="arm"><title>{esc(tip)}</title>'
            f'<text x="{left - 8}" y="{y + 4}" text-anchor="end">{esc(name)}</text>'
            f'<line x1="{x(arm.reward_lower):.1f}" x2="{x(arm.reward_upper):.1f}" y1="{y}" '
            f'y2="{y}" stroke="{color}" stroke-width="4" stroke-linecap="round"/>'
            f'<circle cx="{x(arm.mean_reward):.1f}" cy="{y}" r="5" fill="#fff" '
            f'stroke="{color}" stroke-width="2"/></g>'
        )
    return Html(
        f'<svg class="intervals" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" aria-label="reward interval of each arm">'
        f"{''.join(parts)}</svg>"
    )
