"""A rollout's spans as a tree: parents before children, siblings in start order."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from fulmen.dashboard._rollout_queries import RewardRow, SpanRow


@dataclass
class SpanNode:
    """A span, the rewards that score it, and its child spans."""

    span: SpanRow
    rewards: list[RewardRow] = field(default_factory=list)
    children: list[SpanNode] = field(default_factory=list)


def span_tree(spans: Sequence[SpanRow], rewards: Sequence[RewardRow]) -> list[SpanNode]:
    """The roots of one attempt's spans (given in start order), with each reward attached to
    the span it names. A span whose parent is not among `spans` (a lost or late parent) is
    a root, so nothing recorded goes unshown; rewards naming no span here are left out (the
    caller shows them as the rollout's)."""
    nodes = {span.span_id: SpanNode(span) for span in spans}
    roots: list[SpanNode] = []
    for span in spans:
        node = nodes[span.span_id]
        parent = nodes.get(span.parent_span_id) if span.parent_span_id else None
        if parent is None or parent is node:
            roots.append(node)
        else:
            parent.children.append(node)
    for reward in rewards:
        if reward.span_id is not None and reward.span_id in nodes:
            nodes[reward.span_id].rewards.append(reward)
    return roots
