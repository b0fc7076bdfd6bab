"""`fulmen demo`, `fulmen up` and `fulmen dashboard`: the whole loop run on this machine,
and the dashboard that shows it. Registered on the `fulmen` app in `fulmen/cli.py`."""

from __future__ import annotations

from typing import Annotated

import typer


def demo(
    algo: str = typer.Option("sft", help="rl | sft | apo | module:Class of an Algorithm"),
    task: str = typer.Option(
        "calculator", help="calculator | lookup (multi-turn) | module:attribute of an AgentTask"
    ),
    credit: str = typer.Option(
        "final", help="final | discounted | per_call | module:attribute of a credit assigner"
    ),
    versions: int = typer.Option(3, min=1, help="Trainer jobs to run."),
    tasks: int = typer.Option(24, min=1, help="Tasks per window (each tried --attempts times)."),
    attempts: int = typer.Option(4, min=1, help="Attempts per task."),
    heldout_tasks: int = typer.Option(50, min=1, help="Held-out tasks the gate scores on."),
    model: str = typer.Option("smollm2", help='"smollm2" or a Hugging Face model directory.'),
    budget_minutes: float = typer.Option(
        13.0, min=0.1, help="The run's time; no round starts that would not fit."
    ),
    adapt: bool = typer.Option(
        True, help="Size windows and the held-out set to this machine's measured pace."
    ),
) -> None:
    """Run the whole loop on the embedded default: agent, policy server, stream runner,
    store, scheduler, trainer jobs, versions hot-swapped; ends with held-out reward by
    version, `.fulmen/demo/summary.json` and `.fulmen/demo/reward.png`."""
    from fulmen.demo import DemoSettings, run_demo, task_settings

    try:
        chosen = task_settings(task)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--task") from None
    run_demo(
        DemoSettings(
            **chosen,
            algo=algo,
            credit=credit,
            versions=versions,
            tasks_per_window=tasks,
            attempts_per_task=attempts,
            heldout_tasks=heldout_tasks,
            model=model,
            budget_minutes=budget_minutes,
            adapt=adapt,
        )
    )


def up_command(
    fresh: bool = typer.Option(False, help="Delete what an earlier run left first."),
    model: str | None = typer.Option(None, help='"smollm2" or a Hugging Face model directory.'),
    algo: str | None = typer.Option(
        None, help="rl | sft | dpo | kto | apo | module:Class of an Algorithm"
    ),
    agents: int | None = typer.Option(None, min=1, help="Agent processes."),
) -> None:
    """Run the whole loop as separate processes on a local Kafka broker: the broker, the
    store server, a stream worker, the policy server, the scheduler (its trainer jobs
    publish on the control topic) and agents. Logs in `.fulmen/up/logs/`; Ctrl-C stops
    everything. Other settings: `FULMEN_UP_*` (ports, task, window size, …)."""
    import signal
    import threading

    from rich.console import Console

    from fulmen.up import UpError, UpSettings, run_up

    given = {"model": model, "algo": algo, "agents": agents}
    settings = UpSettings.model_validate({k: v for k, v in given.items() if v is not None})
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, frame: stop.set())
    try:
        code = run_up(settings, stop, console=Console(), fresh=fresh)
    except UpError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    raise typer.Exit(code)


def dashboard(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8600, help="Port of the dashboard."),
    worker_metrics: Annotated[
        list[str] | None,
        typer.Option(
            "--worker-metrics",
            envvar="FULMEN_DASHBOARD_WORKER_METRICS",
            help="A stream worker's Prometheus URL (http://host:6066/metrics); repeatable.",
        ),
    ] = None,
) -> None:
    """Serve the dashboard: rollouts, span trees, reward by version, versions, health.

    The store comes from `FULMEN_STORE__*` like every command: the embedded chDB store
    (this process then owns it), or a ClickHouse server or `fulmen store serve` at
    `FULMEN_STORE__URL`, where a read-only user is enough (docs/dashboard.md).
    """
    from fulmen.dashboard import ClientSource, StoreReader, create_app
    from fulmen.dashboard import serve as serve_dashboard
    from fulmen.producers import FulmenSettings
    from fulmen.store import LightningStore, connect

    settings = FulmenSettings().store
    # Embedded: this process owns the store and migrates it. A server: read without
    # migrating, so that read-only users can run the dashboard.
    source = LightningStore(settings) if settings.url is None else ClientSource(connect(settings))
    app_ = create_app(StoreReader(source, settings.database), worker_metrics=worker_metrics or ())
    typer.echo(f"dashboard at http://{host}:{port}/rollouts")
    serve_dashboard(app_, host=host, port=port)
