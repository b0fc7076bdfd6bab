"""The versions page's release parts rendered from typed rows: the edge cases a browser test
of a real store does not reach (a decision by hand without evidence, unbounded intervals)."""

from __future__ import annotations

from datetime import UTC, datetime

from fulmen.dashboard._charts import interval_plot
from fulmen.dashboard._release_queries import ArmRow, DecisionRow, latest_actions
from fulmen.dashboard._versions_page import releases_section
from fulmen.schemas import ReleaseAction

AT = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def _decision(
    action: ReleaseAction, arms: list[ArmRow], *, rule: str = "", reason: str = ""
) -> DecisionRow:
    return DecisionRow(
        decided_at=AT, target_agent=None, kind="model", version_id="v2", to_version=None,
        action=action, traffic_share=0.0, automatic=False, reason=reason, rule=rule, arms=arms,
    )  # fmt: skip


def _arm(version_id: str, lower: float, upper: float) -> ArmRow:
    return ArmRow(
        version_id=version_id, episodes=3, mean_reward=0.5, reward_lower=lower,
        reward_upper=upper, error_rate=0.0, latency_mean_s=1.0, tokens_mean=10.0,
    )  # fmt: skip


def test_a_rollback_by_hand_without_evidence_says_so() -> None:
    page = releases_section([_decision("rollback", [], rule="<b>x</b>")])
    assert 'id="release-v2"' in page
    assert "No evidence recorded." in page
    assert "no reason given" in page
    assert "target runs the base deployment" in page
    assert "&lt;b&gt;x&lt;/b&gt;" in page
    assert "<b>x</b>" not in page
    assert "<svg" not in page  # no arms, no interval plot


def test_unbounded_intervals_reach_the_plots_edges() -> None:
    plot = interval_plot(
        _decision("hold", [_arm("v2", float("-inf"), float("inf")), _arm("v1", 0.25, 0.75)])
    )
    assert plot.count('class="arm"') == 2
    assert "inf" not in plot.replace("interval [-∞, ∞]", "")  # no infinite coordinate
    assert "[-∞, ∞]" in plot


def test_the_latest_decision_on_each_canary_counts() -> None:
    decisions = [_decision("hold", []), _decision("promote", [])]
    assert latest_actions(decisions) == {"v2": "promote"}
