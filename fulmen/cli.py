"""The `fulmen` command."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import replace
from typing import Annotated

import typer

from fulmen._cli_errors import FriendlyErrors
from fulmen._cli_services import kafka_app, kube_app, store_app

app = typer.Typer(
    cls=FriendlyErrors,
    no_args_is_help=True,
    help="Fulmen: train agents continually from their own traffic.",
)
app.add_typer(kafka_app, name="kafka")
app.add_typer(kube_app, name="kube")
app.add_typer(store_app, name="store")


@app.callback()
def _import_from_working_directory() -> None:
    # `module:attribute` options (an algorithm, a task, the demo's agent) import from the
    # working directory first, as uvicorn's app paths do.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())


@app.command()
def version() -> None:
    """Print the installed Fulmen version."""
    from importlib.metadata import version as package_version

    typer.echo(package_version("fulmen"))


@app.command()
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


@app.command("up")
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


@app.command()
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


@app.command()
def worker(
    web_port: int | None = typer.Option(None, help="Port of the metrics web server."),
) -> None:
    """Run the stream worker: Kafka's span, reward and rollout topics in, scored episodes out.

    Kafka, topics and the store come from `FULMEN_*` settings; the worker's own from
    `FULMEN_WORKER_*` (batching, grace period, idle timeout, credit assignment). Metrics:
    Prometheus text at /metrics on the web port, Faust's own at /stats/.
    """
    from fulmen.producers import FulmenSettings
    from fulmen.streams import StreamWorker, WorkerSettings

    options = WorkerSettings() if web_port is None else WorkerSettings(web_port=web_port)
    StreamWorker(FulmenSettings(), options).run()


@app.command()
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


@app.command()
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


@app.command()
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


@app.command()
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


@app.command()
def serve(
    model: str = typer.Option(
        "smollm2", help='A Hugging Face model directory, or "smollm2" (built once, cached).'
    ),
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, help="Port of the OpenAI-compatible API."),
    name: str | None = typer.Option(None, help="The base model's request name (default: dir)."),
    follow_versions: bool = typer.Option(
        False, help="Load each version published on the Kafka control topic (FULMEN_KAFKA__*)."
    ),
    replica_id: str | None = typer.Option(
        None, help="Acknowledge versions as this replica (FULMEN_SERVE_REPLICA_ID; HOSTNAME)."
    ),
    pool: str | None = typer.Option(
        None, help='The replicas\' pool acknowledgements name (FULMEN_SERVE_POOL; "default").'
    ),
    unload_grace_s: float | None = typer.Option(
        None, help="Unload versions no longer needed after this long (FULMEN_SERVE_UNLOAD_GRACE_S)."
    ),
    access_log: bool = typer.Option(True, help="Log a line per request, like uvicorn."),
) -> None:
    """Serve a policy model with an OpenAI-compatible API, like vLLM (docs/serving.md).

    Chat completions with token ids and logprobs, and vLLM's runtime LoRA API
    (/v1/load_lora_adapter, /v1/unload_lora_adapter) for published versions; with
    --follow-versions, loads are acknowledged on the control topic and versions no longer
    needed are unloaded after a grace period (docs/serving.md#the-fleet). API keys
    (FULMEN_SERVE_API_KEYS, FULMEN_SERVE_API_KEY_FILE; required beyond loopback) and the
    directories versions load from (FULMEN_SERVE_MODEL_ROOTS) are settings.
    """
    from pathlib import Path

    from fulmen.auth import check_exposure
    from fulmen.models import base_model_dir
    from fulmen.producers import FulmenSettings
    from fulmen.serving import AdapterFollower, PolicyServer, ServeSettings
    from fulmen.serving import serve as serve_policy

    settings = ServeSettings()
    keys = settings.load_api_keys()
    check_exposure(keys, host, service="policy server", env_prefix="FULMEN_SERVE_")
    directory = base_model_dir() if model == "smollm2" else Path(model)
    if not (directory / "config.json").is_file():
        typer.echo(f"{directory} is not a Hugging Face model directory", err=True)
        raise typer.Exit(2)
    server = PolicyServer(directory, name=name, model_roots=settings.model_roots)
    typer.echo(f"serving {server.name} ({server.precision}) at http://{host}:{port}/v1")
    if follow_versions:  # it retries until the server below answers
        follower = AdapterFollower(
            f"http://{host}:{port}/v1",
            FulmenSettings(),
            api_key=keys.own,
            replica_id=replica_id or settings.replica_id,
            pool=pool or settings.pool,
            unload_grace_s=settings.unload_grace_s if unload_grace_s is None else unload_grace_s,
        )
        follower.start()
    serve_policy(server, host=host, port=port, access_log=access_log, keys=keys)


@app.command()
def gateway(
    upstream: str | None = typer.Option(
        None, help="OpenAI base URL of the model server (default: FULMEN_GATEWAY_UPSTREAM_URL)."
    ),
    host: str | None = typer.Option(None, help="Address to listen on."),
    port: int | None = typer.Option(None, help="Port of the gateway."),
) -> None:
    """Run the gateway: an OpenAI-compatible proxy that records agents' calls (docs/gateway.md).

    Agents in any language point their base URL at
    http://<host>:<port>/rollouts/<rollout id>/v1. Events go where `FULMEN_*` says (set
    FULMEN_TRANSPORT=kafka); the gateway's own settings are `FULMEN_GATEWAY_*`, its API keys
    among them (FULMEN_GATEWAY_API_KEYS, FULMEN_GATEWAY_API_KEY_FILE; required beyond
    loopback) and the upstream's (FULMEN_GATEWAY_UPSTREAM_API_KEY).
    """
    from fulmen.auth import check_exposure
    from fulmen.producers.gateway import GatewaySettings, open_gateway, serve_gateway

    given = {"upstream_url": upstream, "host": host, "port": port}
    settings = GatewaySettings.model_validate({k: v for k, v in given.items() if v is not None})
    keys = settings.load_api_keys()  # before Kafka: a refusal comes at once
    check_exposure(keys, settings.host, service="gateway", env_prefix="FULMEN_GATEWAY_")
    running = open_gateway(settings)
    typer.echo(
        f"gateway at http://{settings.host}:{settings.port} in front of {settings.upstream_url}"
    )
    serve_gateway(running, host=settings.host, port=settings.port)


@app.command()
def sql(
    statement: str = typer.Argument(..., help="A ClickHouse SQL query."),
    limit: int = typer.Option(200, min=1, help="Rows to print at most."),
) -> None:
    """Run SQL against the LightningStore and print the result as a table."""
    from rich.console import Console
    from rich.table import Table

    from fulmen.producers import FulmenSettings
    from fulmen.store import connect

    # No migration here: analysts may connect as read-only users.
    client = connect(FulmenSettings().store)
    try:
        result = client.query_arrow(statement)
    except Exception as exc:  # the server's message is what the analyst needs
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    finally:
        client.close()
    table = Table(*result.column_names, caption=f"{result.num_rows} row(s)")
    for row in result.slice(0, limit).to_pylist():
        table.add_row(*(str(value) for value in row.values()))
    Console().print(table)


if __name__ == "__main__":
    app()
