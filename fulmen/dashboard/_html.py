"""HTML building blocks: every value reaches the page escaped unless it is `Html`, markup
built here from escaped parts. No templates, no JavaScript build step."""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from urllib.parse import quote


class Html(str):
    """Markup that is safe to put on a page as is: made by the helpers of this package,
    every user value in it escaped."""

    __slots__ = ()


Cell = Html | str | int | float | datetime | None
"""A table cell: `Html` as is, times formatted, None as a dash, anything else escaped."""


def esc(value: object) -> Html:
    """`value` as text, with `<`, `>`, `&` and quotes escaped (for content and attributes)."""
    return Html(html.escape(str(value), quote=True))


def cell(value: Cell) -> Html:
    """How a value is shown: see `Cell`."""
    if isinstance(value, Html):
        return value
    if value is None:
        return Html('<span class="none">-</span>')
    if isinstance(value, datetime):
        return esc(when(value))
    if isinstance(value, float):
        return esc(f"{value:.3f}")
    return esc(value)


def badge(value: str, prefix: str = "status") -> Html:
    """`value` in a span of class `{prefix}-{value}`: how a status or outcome is coloured."""
    return Html(f'<span class="{esc(prefix)}-{esc(value)}">{esc(value)}</span>')


def when(moment: datetime) -> str:
    """A time as `YYYY-MM-DD HH:MM:SS.mmm` in UTC."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def bound(value: float) -> str:
    """An interval's end: three decimals, or ±∞ where the interval is unbounded."""
    if math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    return f"{value:.3f}"


def interval(lower: float, upper: float) -> str:
    """`[lower, upper]`, each end as `bound` writes it."""
    return f"[{bound(lower)}, {bound(upper)}]"


def link(href: str, label: object, **attrs: str) -> Html:
    """An `<a>`; `href` is built by the caller from `path_part`-quoted values."""
    extra = "".join(f" {name}={esc(value)!s}" for name, value in attrs.items())
    return Html(f'<a href="{esc(href)}"{extra}>{esc(label)}</a>')


def path_part(value: str) -> str:
    """`value` quoted as one URL path segment."""
    return quote(value, safe="")


def join(parts: Iterable[Html], separator: str = "") -> Html:
    """Markup pieces concatenated."""
    return Html(esc(separator).join(parts))


def table(
    headers: Sequence[str], rows: Iterable[Sequence[Cell]], *, table_id: str, empty: str
) -> Html:
    """A table with id `table_id`; `empty` is shown instead when there are no rows."""
    body = ["<tr>" + "".join(f"<td>{cell(value)}</td>" for value in row) + "</tr>" for row in rows]
    if not body:
        return Html(f'<p class="empty" id="{esc(table_id)}-empty">{esc(empty)}</p>')
    head = "".join(f"<th>{esc(header)}</th>" for header in headers)
    return Html(
        f'<table id="{esc(table_id)}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def pairs(values: dict[str, float]) -> Html:
    """A name → number mapping as `name=value` items."""
    return join(
        (esc(f"{name}={value:.4g}") for name, value in sorted(values.items())), separator=", "
    )


_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 0; color: #1d2330; background: #f6f7f9; }
header { background: #1d2330; color: #fff; padding: 0.6rem 1.2rem; display: flex; gap: 1.4rem;
         align-items: baseline; }
header b { font-size: 1.1rem; } header a { color: #cfd6e4; text-decoration: none; }
header a.active { color: #fff; border-bottom: 2px solid #f0b429; }
main { padding: 1rem 1.2rem; }
h1 { font-size: 1.3rem; margin: 0.2rem 0 0.8rem; } h2 { font-size: 1.1rem; margin-top: 1.4rem; }
table { border-collapse: collapse; background: #fff; width: 100%; }
th, td { border-bottom: 1px solid #e3e6eb; padding: 0.3rem 0.5rem; text-align: left;
         vertical-align: top; }
th { background: #eef0f4; font-weight: 600; }
form.filters { display: flex; flex-wrap: wrap; gap: 0.6rem; align-items: end;
               background: #fff; padding: 0.7rem; margin-bottom: 0.8rem; }
form.filters label { display: flex; flex-direction: column; font-size: 0.8rem; color: #555; }
form.filters input, form.filters select { font: inherit; padding: 0.15rem 0.3rem; }
.status-succeeded, .outcome-published { color: #16794c; font-weight: 600; }
.status-failed, .status-timeout, .status-cancelled, .outcome-failed { color: #b42318;
  font-weight: 600; }
.outcome-gate_failed, .release-hold { color: #b54708; font-weight: 600; }
.release-promote { color: #16794c; font-weight: 600; }
.release-rollback { color: #b42318; font-weight: 600; }
.release-promote a, .release-hold a, .release-rollback a { color: inherit; }
svg text.release-rollback { fill: #b42318; } svg text.release-promote { fill: #16794c; }
svg text.release-hold { fill: #b54708; }
.decision { background: #fff; border: 1px solid #e3e6eb; padding: 0.4rem 0.7rem;
            margin: 0.5rem 0; } .decision p { margin: 0.2rem 0; }
.status-running { color: #175cd3; font-weight: 600; }
.none, .muted, .unscored { color: #98a2b3; }
.pager { margin: 0.6rem 0; display: flex; gap: 1rem; }
ul.tree { list-style: none; padding-left: 1.3rem; border-left: 1px dashed #c9ced6; }
ul.tree.root { padding-left: 0; border-left: none; }
li.span > details { background: #fff; margin: 0.3rem 0; padding: 0.3rem 0.6rem;
                    border: 1px solid #e3e6eb; border-radius: 4px; }
li.span summary { cursor: pointer; }
.kind { font-size: 0.75rem; background: #eef0f4; border-radius: 3px; padding: 0 0.3rem; }
.reward { background: #fef0c7; border-radius: 3px; padding: 0 0.35rem; font-weight: 600; }
.message { margin: 0.3rem 0; } .message .role { font-weight: 600; color: #475467; }
pre { white-space: pre-wrap; word-break: break-word; background: #f2f4f7; padding: 0.35rem 0.5rem;
      margin: 0.15rem 0; font-size: 0.85rem; }
svg text { font: 11px system-ui, sans-serif; fill: #344054; }
dl.facts { display: flex; flex-wrap: wrap; gap: 0.4rem 1.6rem; background: #fff; margin: 0;
           padding: 0.6rem 0.8rem; }
dl.facts dt { font-size: 0.75rem; color: #667085; } dl.facts dd { margin: 0; font-weight: 500; }
.error { background: #fee4e2; border: 1px solid #fda29b; padding: 0.6rem 0.8rem; }
"""

PAGES = (("rollouts", "/rollouts"), ("versions", "/versions"), ("rewards", "/rewards"),
         ("health", "/health"))  # fmt: skip
"""The navigation bar: (name, path)."""


def page(title: str, active: str, body: Html) -> Html:
    """A whole document: the navigation bar (with `active` marked) and `body`."""
    nav = "".join(
        f'<a href="{path}" class="active">{name}</a>'
        if name == active
        else f'<a href="{path}">{name}</a>'
        for name, path in PAGES
    )
    return Html(
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{esc(title)} · Fulmen</title><style>{_STYLE}</style></head>"
        f"<body><header><b>Fulmen</b>{nav}</header><main>{body}</main></body></html>"
    )
