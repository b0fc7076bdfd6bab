"""What the demo shows at the end: held-out reward by version (a table and
`summary.json`) and the agent's reward over time by version (`reward.png`)."""

from __future__ import annotations

import json
import shlex
from dataclasses import asdict, dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from fulmen.demo._records import LoopRecord
from fulmen.store import LightningStore

BASE = "base"
"""The summary's name for the model before any version (the store's empty version id)."""
_ROLLING = 32
_FATES = {"promote": "promoted", "rollback": "rolled back", "hold": "still a canary"}


@dataclass(frozen=True, slots=True)
class VersionSummary:
    """One version in `summary.json`: `algorithm` None for the base model; `episodes` the
    agent ran on it; `heldout_reward` as the trainer's gate scored it (greedy decoding)."""

    version: str
    algorithm: str | None
    episodes: int
    heldout_reward: float | None
    release: str | None = None
    """What the release rule made of it as a canary (`promote`, `rollback`, `hold`), if it
    was one."""


def summarize(
    record: LoopRecord, store: LightningStore, *, agent: str, algo: str
) -> list[VersionSummary]:
    """The base model, then each published version, in the order they were in force."""
    counts = {
        row["model_version"] or BASE: int(row["n"])
        for row in store.sql(
            f"SELECT model_version, uniqExact(rollout_id, attempt) AS n "
            f"FROM {store.settings.database}.episodes "
            "WHERE agent_name = {agent:String} GROUP BY model_version",
            {"agent": agent},
        ).to_pylist()
    }
    base_score = next(
        (j.metrics["heldout_reward_parent"] for j in record.jobs
         if "heldout_reward_parent" in j.metrics), None,
    )  # fmt: skip
    fates = {r.version: r.action for r in record.releases}
    versions = [VersionSummary(BASE, None, counts.get(BASE, 0), base_score)]
    for job in record.jobs:
        if job.version is not None:
            score = job.metrics.get("heldout_reward")
            versions.append(VersionSummary(job.version, algo, counts.get(job.version, 0), score,
                                           fates.get(job.version)))  # fmt: skip
    return versions


def write_summary(path: Path, versions: list[VersionSummary], record: LoopRecord) -> None:
    jobs = [
        {"window_id": j.window_id, "episodes": j.episodes, "outcome": j.outcome,
         "version": j.version, "seconds": round(j.seconds, 1), "metrics": j.metrics}
        for j in record.jobs
    ]  # fmt: skip
    releases = [asdict(r) | {"arms": [a.model_dump() for a in r.arms]} for r in record.releases]
    document = {"versions": [asdict(v) for v in versions], "jobs": jobs, "releases": releases,
                "wall_s": round(record.wall_s, 1)}  # fmt: skip
    path.write_text(json.dumps(document, indent=2) + "\n")


def show_table(console: Console, versions: list[VersionSummary]) -> None:
    table = Table(title="held-out reward by version (the gate's greedy score)")
    for column in ("version", "algorithm", "episodes run on it", "held-out reward",
                   "canary"):  # fmt: skip
        table.add_column(column)
    for v in versions:
        score = "—" if v.heldout_reward is None else f"{v.heldout_reward:.2f}"
        fate = _FATES.get(v.release or "", "—")
        table.add_row(v.version, v.algorithm or "—", str(v.episodes), score, fate)
    console.print(table)


def show_browse_hint(console: Console, store: Path) -> None:
    """How to open the demo's store in the dashboard: a command that runs as printed from
    the clone's root (`make dashboard` runs `fulmen` from `.venv`, which is not on the
    PATH), on a line of its own that rich never wraps, so that it copies whole."""
    console.print("Browse the store in the dashboard (one process at a time can open it):")
    command = f"FULMEN_STORE__PATH={shlex.quote(str(store))} make dashboard"
    console.print(f"  {command}", soft_wrap=True, markup=False, highlight=False)


def plot_reward(
    path: Path, store: LightningStore, versions: list[VersionSummary], *, agent: str
) -> None:
    """The agent's sampled reward over its episodes (rolling mean), one colour per version,
    and the held-out reward of the version in force as a black step line (a version
    published after the last episode shows as the last step, at the end)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = store.sql(  # an episode's last revision holds all its rewards; unscored: none
        "SELECT argMax(model_version, revision) AS model_version, "
        "argMax(reward, revision) AS last_reward, min(finished_at) AS first_finished "
        f"FROM {store.settings.database}.episodes WHERE agent_name = {{agent:String}} "
        "GROUP BY rollout_id, attempt HAVING argMax(scored, revision) "
        "ORDER BY first_finished, rollout_id",
        {"agent": agent},
    ).to_pylist()
    figure, axes = plt.subplots(figsize=(9, 4.5), dpi=110)
    rewards = [float(r["last_reward"]) for r in rows]
    names = [r["model_version"] or BASE for r in rows]
    starts, scores = [], []
    for colour, version in enumerate(versions):
        xs = [i for i, name in enumerate(names) if name == version.version]
        if version.heldout_reward is not None and version.release != "rollback":
            starts.append(xs[0] if xs else len(names))
            scores.append(version.heldout_reward)
        if not xs:
            continue
        own = [rewards[i] for i in xs]  # a canary's episodes interleave with its parent's
        rolling = [
            sum(own[max(0, k - _ROLLING + 1) : k + 1]) / (k + 1 - max(0, k - _ROLLING + 1))
            for k in range(len(own))
        ]
        label = version.version + (f" ({version.algorithm})" if version.algorithm else "")
        if version.release:
            label += f", canary {_FATES[version.release]}"
        axes.plot(xs, rolling, color=f"C{colour}", label=f"{label}: sampled, rolling {_ROLLING}",
                  linestyle="--" if version.release == "rollback" else "-")  # fmt: skip
    if scores:
        axes.step([*starts, len(names)], [*scores, scores[-1]], where="post", color="black",
                  marker="o", markevery=list(range(len(scores))),
                  label="held-out reward of the version in force (greedy)")  # fmt: skip
    axes.set_xlabel("episode (in the order they finished)")
    axes.set_ylabel("reward")
    axes.set_ylim(-0.02, 1.02)
    axes.set_title("the agent's reward, version by version")
    axes.legend(loc="upper left", fontsize="small")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
