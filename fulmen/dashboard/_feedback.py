"""The feedback of a rollout's attempt on its page: each thumb with who gave it, the call it
rates, the correction and the comment."""

from __future__ import annotations

from collections.abc import Sequence

from fulmen.dashboard._html import Html, esc, join
from fulmen.dashboard._rollout_queries import FeedbackRow


def feedback_list(rows: Sequence[FeedbackRow], attempt: int) -> Html:
    """The attempt's feedback, oldest first; nothing when it has none."""
    if not rows:
        return Html("")
    items = join(_item(row) for row in rows)
    listed = f'<ul class="feedback" id="feedback-{attempt}">{items}</ul>'
    return Html(f"<div><b>feedback</b>{listed}</div>")


def _item(row: FeedbackRow) -> Html:
    thumb = "👍 up" if row.thumbs_up else "👎 down"
    rated = f"call {esc(row.span_id)}" if row.span_id else "the answer"
    parts = [
        f'<span class="thumb-{"up" if row.thumbs_up else "down"}">{thumb}</span>',
        f'<span class="muted">by {esc(row.source)} on {rated}, {esc(row.emitted_at)}</span>',
    ]
    if row.correction is not None:
        parts.append(f'<div>correction<pre class="correction">{esc(row.correction)}</pre></div>')
    if row.comment:
        parts.append(f"<i>{esc(row.comment)}</i>")
    return Html(f"<li>{' '.join(parts)}</li>")
