"""`fulmen train`, `fulmen scheduler`, `fulmen rollout` and `fulmen rollback`: versions
trained from windows of episodes, and released or rolled back. Registered on the `fulmen`
app in `fulmen/cli.py`."""

from __future__ import annotations

import json
from dataclasses import replace

import typer


def train(
    algo: str | None = typer.Option(
        None, help="rl | sft | dpo | kto | apo | module:Class of an Algorithm (default: sft)"
    ),
    pairing: str | None = typer.Option(
        None,
        help="dpo, kto: rewards | thumbs | module:attribute (default: rewards for dpo, "
        "thumbs for kto)",
    ),
    agent: str | None = typer.Option(None, help="Train the version of this agent."),
    task: str | None = typer.Option(None, help="module:attribute of the AgentTask to gate on."),
    base_model: str | None = typer.Option(None, help='Model directory or "smollm2".'),
    parent: str | None = typer.Option(None, help="Version to improve (default: in force)."),
    window_id: str | None = typer.Option(None, help="Window id (the scheduler's)."),
    heldout_tasks: int | None = typer.Option(None, min=1, help="Held-out tasks of the gate."),
    result_file: str | None = typer.Option(None, help="Write the job's result here as JSON."),
) -> None:
    """Train a version from a window of episodes, gate it, publish it if it passes.

    The same entrypoint a Kubernetes Job runs; every other setting comes from
    `FULMEN_TRAIN_*` (docs/trainers.md). Exits 0 when published, 3 when the gate held the
    candidate back, 4 when the window had nothing to train on. Under `torchrun` (any number
    of processes) the ranks train sharded and rank 0 gates and publishes; every rank exits
    with the job's code.
    """
    from datetime import timedelta

    from fulmen.producers import FulmenSettings, publish_version
    from fulmen.schemas import VersionEvent
    from fulmen.store import LightningStore
    from fulmen.trainers import TrainSettings, process_group, run_job, write_result

    given = {
        "algo": algo, "agent_name": agent, "task": task, "base_model": base_model,
        "parent": parent, "window_id": window_id, "result_file": result_file, "pairing": pairing,
    }  # fmt: skip
    options = TrainSettings.model_validate({k: v for k, v in given.items() if v is not None})
    if heldout_tasks is not None:
        options.gate = replace(options.gate, heldout_tasks=heldout_tasks)
    settings = FulmenSettings()
    store = LightningStore(settings.store)

    def publish(event: VersionEvent) -> None:
        if settings.transport == "kafka":  # agents and model servers follow the topic
            publish_version(event, settings)
        if not options.relay_version:  # the lineage the next job starts from
            store.write_events([event])

    timeout = timedelta(seconds=options.collective_timeout_seconds)
    with process_group(timeout=timeout) as ranks:  # one process without torchrun
        result = run_job(options, store=store, publish=publish, ranks=ranks)
    if ranks.main and options.result_file is not None:
        write_result(result, options.result_file)
    if ranks.main:
        typer.echo(json.dumps({"outcome": result.outcome, "version": result.candidate_version,
                               "metrics": result.metrics}))  # fmt: skip
    codes = {"published": 0, "gate_failed": 3, "failed": 4}
    raise typer.Exit(codes[result.outcome])


def scheduler(
    executor: str | None = typer.Option(None, help="kubernetes | local (default: settings)."),
    once: bool = typer.Option(False, help="One pass, then exit."),
) -> None:
    """Start a trainer job for each window of episodes that is ready, once, and follow it.

    A window is ready after N new episodes, T elapsed or a reward drop
    (`FULMEN_SCHEDULER_WINDOW__*`); at most `FULMEN_SCHEDULER_MAX_CONCURRENT` jobs run at
    once, as Kubernetes Jobs or as local `fulmen train` subprocesses. With the embedded
    store, this process owns it and serves it to the local jobs (docs/kubernetes.md).
    """
    import contextlib
    import signal
    import threading

    from rich.console import Console

    from fulmen.producers import FulmenSettings
    from fulmen.store import LightningStore, StoreSettings, client_env, shared_store
    from fulmen.trainers.scheduler import (
        JobExecutor,
        LocalJobs,
        RetryPolicy,
        Scheduler,
        SchedulerEvent,
        SchedulerSettings,
        kubernetes_jobs,
    )

    console = Console()
    options = SchedulerSettings.model_validate({"executor": executor} if executor else {})
    styles = {"started": "green", "exists": "dim", "succeeded": "bold green", "failed": "red",
              "lost": "red"}  # fmt: skip

    def show(event: SchedulerEvent) -> None:
        window = event.window
        console.print(
            f"[{styles[event.kind]}]{event.kind:>9}[/] {window.job_name} "
            f"{window.target.agent}/{window.target.algo} {window.episodes} episodes "
            f"({window.trigger}){' — ' + event.reason if event.reason else ''}"
        )

    rule = options.window
    console.print(
        f"[bold]scheduler[/] ({options.executor}): agents {options.agents or 'all'}, "
        f"algos {options.algos}, every {rule.every_episodes} episodes / "
        f"{rule.every_seconds} s / reward drop {rule.reward_drop}, "
        f"at most {options.max_concurrent} at once"
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, frame: stop.set())
    store_settings = FulmenSettings().store
    # Local jobs reach an embedded store through this process, which serves it.
    shared: contextlib.AbstractContextManager[StoreSettings] = (
        shared_store(store_settings)
        if options.executor == "local"
        else contextlib.nullcontext(store_settings)
    )
    with shared as reachable:
        store = LightningStore(reachable)
        jobs: JobExecutor
        if options.executor == "kubernetes":
            jobs = kubernetes_jobs(options)
        else:
            retry = RetryPolicy(options.retries, options.retry_backoff_seconds)
            env = client_env(reachable) if reachable.url else {}
            jobs = LocalJobs(options.local, retry=retry, env=env)
        loop = Scheduler(options, store=store, jobs=jobs, on_event=show)
        try:
            if once:
                loop.tick()
            else:
                loop.run(stop)
        finally:
            jobs.close()
            store.close()


def rollout(
    once: bool = typer.Option(False, help="One pass, then exit."),
) -> None:
    """Decide canary releases: follow the control topic and, every
    `FULMEN_RELEASE__INTERVAL_S`, compare each canary with the version it would replace from
    the store's episodes, then promote it or roll it back (docs/versions.md). The rule's
    parameters are `FULMEN_RELEASE__*`; Kafka and the store come from `FULMEN_*`.
    """
    import signal
    import threading

    from fulmen.producers import FulmenSettings
    from fulmen.releases import ReleaseController, ReleaseSettings
    from fulmen.schemas import ReleaseDecision
    from fulmen.store import LightningStore

    options = ReleaseSettings()
    settings = FulmenSettings()

    def show(decision: ReleaseDecision) -> None:
        shown = {"action", "target_agent", "kind", "version_id", "to_version", "reason"}
        typer.echo(json.dumps(decision.model_dump(include=shown)))

    store = LightningStore(settings.store)
    controller = ReleaseController(options, settings, store=store, on_decision=show)
    try:
        if once:
            controller.tick()
        else:
            stop = threading.Event()
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda signum, frame: stop.set())
            controller.run(stop)
    finally:
        controller.close()
        store.close()


def rollback(
    target: str = typer.Argument(..., help="The agent to roll back."),
    to: str | None = typer.Option(None, "--to", help="The version to go back to."),
    kind: str = typer.Option("model", help="model | prompt"),
) -> None:
    """Roll TARGET back now: its canary of `--kind` if one runs (to the canary's parent),
    else the version in force (to its parent); `--to` picks the version. Published on the
    control topic as a release decision (automatic=false) that agents apply at once."""
    from fulmen.producers import FulmenSettings
    from fulmen.releases import rollback as roll_back
    from fulmen.schemas import VersionKind
    from fulmen.store import LightningStore

    kinds: dict[str, VersionKind] = {"model": "model", "prompt": "prompt"}
    if kind not in kinds:
        typer.echo(f"error: --kind is model or prompt, not {kind!r}", err=True)
        raise typer.Exit(2)
    settings = FulmenSettings()
    decision = roll_back(settings, target, kind=kinds[kind], to_version=to)
    store = LightningStore(settings.store)  # the audit trail, and what trainers fold
    try:
        store.write_events([decision])
    finally:
        store.close()
    back_to = decision.to_version or "the base deployment"
    typer.echo(f"rolled {target} back from {decision.version_id} to {back_to}")
