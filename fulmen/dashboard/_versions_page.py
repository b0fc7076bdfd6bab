"""/versions: the lineage, the publications and how each was released, each canary's
decisions with their evidence per arm, which serving replicas loaded each model version, and
the training runs (every user value escaped)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from fulmen.dashboard._charts import interval_plot, lineage_graph
from fulmen.dashboard._html import (
    Cell,
    Html,
    badge,
    cell,
    esc,
    interval,
    link,
    page,
    pairs,
    path_part,
    table,
)
from fulmen.dashboard._queries import TrainingRunRow, VersionRow
from fulmen.dashboard._release_queries import (
    OUTCOMES,
    DecisionRow,
    ReplicaState,
    arm_role,
    latest_actions,
)
from fulmen.schemas import ReleaseAction, ServingStatus

ARM_HEADERS = ("arm", "version", "episodes", "mean reward", "reward interval", "error rate",
               "mean latency", "mean tokens")  # fmt: skip
SERVING_HEADERS = ("version", "model", "pool", "loaded", "failed", "unloaded",
                   "latest acknowledgement (UTC)")  # fmt: skip


def _anchor(version_id: str) -> str:
    return f"release-{path_part(version_id)}"


def _algorithm(version: VersionRow) -> Cell:
    """The algorithm, and its recipe beneath it (the pairing rule of DPO and KTO)."""
    if not version.recipe:
        return version.algorithm
    recipe = "<br>".join(
        f'<span class="muted" title="{esc(value)}">{esc(key)}: {esc(_short(value))}</span>'
        for key, value in sorted(version.recipe.items())
    )
    return Html(f"{esc(version.algorithm)}<br>{recipe}")


def _short(value: str) -> str:
    return value if len(value) <= 48 else value[:12] + "…"


def release_cell(version: VersionRow, actions: Mapping[str, ReleaseAction]) -> Html:
    """How one publication was released: at 100%, or as a canary on its share with its
    latest decision (linked to the decisions)."""
    if version.traffic_share >= 1:
        return Html("100%")
    share = esc(f"canary {version.traffic_share:.0%}")
    action = actions.get(version.version_id)
    if action is None:
        return Html(f'{share} <span class="muted">(no decision yet)</span>')
    outcome = link(f"#{_anchor(version.version_id)}", OUTCOMES[action])
    return Html(f'{share} → <span class="release-{esc(action)}">{outcome}</span>')


def _arm_rows(decision: DecisionRow) -> list[list[Cell]]:
    return [
        [
            arm_role(index),
            arm.version_id,
            arm.episodes,
            arm.mean_reward,
            interval(arm.reward_lower, arm.reward_upper),
            f"{arm.error_rate:.1%}",
            f"{arm.latency_mean_s:.2f} s",
            f"{arm.tokens_mean:.1f}",
        ]
        for index, arm in enumerate(decision.arms)
    ]


def _decision(decision: DecisionRow, number: int) -> Html:
    how = "automatic" if decision.automatic else "by hand"
    if decision.action == "hold":
        after = f"stays on {decision.traffic_share:.0%} of rollouts"
    else:
        after = f"target runs {decision.to_version or 'the base deployment'}"
    rule = f" · rule <code>{esc(decision.rule)}</code>" if decision.rule else ""
    reason = esc(decision.reason) or Html('<i class="muted">no reason given</i>')
    return Html(
        f'<div class="decision" data-action="{esc(decision.action)}">'
        f'<p><span class="release-{esc(decision.action)}">{esc(decision.action)}</span> · '
        f'<span class="how">{esc(how)}</span> · {cell(decision.decided_at)} UTC · '
        f"{esc(after)}{rule}</p>"
        f'<p class="reason">{reason}</p>'
        + table(
            ARM_HEADERS,
            _arm_rows(decision),
            table_id=f"arms-{number}",
            empty="No evidence recorded.",
        )
        + "</div>"
    )


def releases_section(decisions: Sequence[DecisionRow]) -> Html:
    """Per canary with decisions (the latest decided first): its target, the interval plot
    of the latest decision's arms, and every decision on it, newest first."""
    if not decisions:
        return Html('<p class="empty" id="releases-empty">No release decisions yet.</p>')
    by_version: dict[str, list[DecisionRow]] = {}
    for decision in reversed(decisions):
        by_version.setdefault(decision.version_id, []).append(decision)
    sections: list[str] = []
    number = 0
    for version_id, taken in by_version.items():
        latest = taken[0]
        items: list[str] = []
        for decision in taken:
            number += 1
            items.append(_decision(decision, number))
        sections.append(
            f'<section class="release" id="{esc(_anchor(version_id))}">'
            f'<h3>{esc(version_id)} <span class="muted">{esc(latest.kind)} · '
            f"{esc(latest.target_agent or 'all agents')}</span></h3>"
            + interval_plot(latest)
            + "".join(items)
            + "</section>"
        )
    return Html("".join(sections))


def _replicas(states: Sequence[ReplicaState], status: ServingStatus) -> Cell:
    named = [
        esc(state.replica_id) + (f" ({esc(state.detail)})" if state.detail else "")
        for state in states
        if state.status == status
    ]
    return Html(f'<span class="serving-{status}">{", ".join(named)}</span>') if named else None


def serving_section(states: Sequence[ReplicaState]) -> Html:
    """One row per model version and pool: the replicas whose latest acknowledgement says
    loaded, failed (with why) or unloaded."""
    groups: dict[tuple[str, str, str], list[ReplicaState]] = {}
    for state in states:
        groups.setdefault((state.version_id, state.model_name, state.pool), []).append(state)
    rows: list[list[Cell]] = [
        [
            version_id, model_name, pool,
            _replicas(group, "loaded"), _replicas(group, "failed"), _replicas(group, "unloaded"),
            max(state.last_acked_at for state in group),
        ]
        for (version_id, model_name, pool), group in groups.items()
    ]  # fmt: skip
    return table(
        SERVING_HEADERS, rows, table_id="serving", empty="No serving replica acknowledged yet."
    )


def versions_page(
    published: Sequence[VersionRow],
    runs: Sequence[TrainingRunRow],
    decisions: Sequence[DecisionRow],
    serving: Sequence[ReplicaState],
) -> Html:
    """/versions: the lineage graph, every publication (newest first) with how it was
    released, the release decisions on canaries with their evidence per arm, the serving
    replicas' acknowledgements, and the trainer jobs with their outcome, the gate's or the
    failure's reason included."""
    actions = latest_actions(decisions)
    seen: set[str] = set()
    rows: list[list[Cell]] = []
    for version in published:
        again = version.version_id in seen
        seen.add(version.version_id)
        parent = (
            link(f"#v-{path_part(version.parent_version)}", version.parent_version)
            if version.parent_version
            else None
        )
        name = Html(
            f'<span id="v-{esc(path_part(version.version_id))}" class="version">'
            f"{esc(version.version_id)}</span>"
            + (' <span class="muted">(published again: rollback)</span>' if again else "")
        )
        artifact = version.model_name or version.artifact_uri
        rows.append([
            version.published_at, name, version.kind, version.target_agent or "all agents",
            parent, release_cell(version, actions), _algorithm(version), version.window_id,
            version.dataset_hash[:12] if version.dataset_hash else None,
            artifact, ", ".join(version.prompt_names) or None, pairs(version.metrics),
        ])  # fmt: skip
    headers = ["published (UTC)", "version", "kind", "target", "parent", "release", "algorithm",
               "window", "dataset", "model / artifact", "prompts", "metrics"]  # fmt: skip
    run_rows: list[list[Cell]] = [
        [
            run.started_at, run.run_id, run.agent_name, run.algorithm,
            badge(run.outcome, "outcome"), run.candidate_version, run.parent_version,
            run.window_id, run.episodes,
            f"{(run.finished_at - run.started_at).total_seconds():.1f} s",
            run.reason, pairs(run.metrics),
        ]
        for run in runs
    ]  # fmt: skip
    run_headers = ["started (UTC)", "run", "agent", "algorithm", "outcome", "candidate",
                   "parent", "window", "episodes", "took", "reason", "metrics"]  # fmt: skip
    body = Html(
        "<h1>Versions</h1>"
        + lineage_graph(published, actions)
        + "<h2>Publications</h2>"
        + table(headers, list(reversed(rows)), table_id="versions", empty="No versions yet.")
        + "<h2>Release decisions</h2>"
        + releases_section(decisions)
        + "<h2>Serving replicas</h2>"
        + serving_section(serving)
        + "<h2>Training runs</h2>"
        + table(run_headers, run_rows, table_id="runs", empty="No training runs yet.")
    )
    return page("Versions", "versions", body)
