"""`fulmen up`: start the stack, show it, supervise it, stop it."""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import secrets
import shutil
import threading
from pathlib import Path

from rich.console import Console
from rich.table import Table

from fulmen.producers import FulmenSettings
from fulmen.up._broker import create_stack_topics
from fulmen.up._service import Service, ServiceFailed, UpError
from fulmen.up._settings import UpSettings
from fulmen.up._stack import Stack, plan_stack
from fulmen.up._supervisor import Interrupted, Supervisor

STATE_FILE = "state.json"
"""In the stack's directory while it is up: `{"services": [{"name", "pid", "address",
"log"}], "kafka", "store_url", "policy_url", "worker_metrics_url", "api_key_file"}`."""


def run_up(settings: UpSettings, stop: threading.Event, *, console: Console, fresh: bool) -> int:
    """Start the stack of `settings` (after deleting `settings.dir` when `fresh`), then
    supervise it until `stop` is set (returns 0) or a service dies (its log's tail is shown,
    everything is stopped, returns 1). Every service is stopped before this returns.

    Raises `UpError` when a stack is already up in `settings.dir`.
    """
    root = settings.dir.resolve()
    state = root / STATE_FILE
    _refuse_if_up(state)
    if fresh:
        shutil.rmtree(root, ignore_errors=True)
    (root / "logs").mkdir(parents=True, exist_ok=True)
    default_model = str(importlib.import_module(settings.agent).DEFAULT_MODEL)
    api_key = secrets.token_urlsafe(32)
    stack = plan_stack(settings, environ=os.environ, default_model=default_model, api_key=api_key)
    _write_key(stack.api_key_file, api_key)

    def stopping(service: Service) -> None:
        console.print(f"[dim]stopping {service.name}[/]")

    supervisor = Supervisor(stop, stop_timeout_s=settings.stop_timeout_s, on_stop=stopping)
    failure: ServiceFailed | None = None
    try:
        with supervisor:
            try:
                _start(stack, settings, supervisor, console)
            except ServiceFailed as exc:
                failure = exc
            except Interrupted:
                pass
            else:
                _write_state(state, stack, supervisor.services)
                console.print(_table(supervisor.services, root))
                console.print("trainer jobs log to logs/jobs/; Ctrl-C stops everything")
                failure = supervisor.watch()
            if failure is not None:
                console.print(f"[bold red]{failure}[/]; the end of {failure.name}'s log:")
                console.print(failure.tail, markup=False, highlight=False)
    finally:
        state.unlink(missing_ok=True)
    console.print("stopped" if failure is None else "[red]stopped: a service failed[/]")
    return 0 if failure is None else 1


def _start(stack: Stack, settings: UpSettings, supervisor: Supervisor, console: Console) -> None:
    """Start every service in order, each ready before the next; the topics once the broker
    is (raises as `Supervisor.start`)."""
    console.print(f"starting kafka at {stack.broker.address}")
    supervisor.start(stack.broker, timeout_s=settings.ready_timeout_s)
    topics = FulmenSettings().topics
    create_stack_topics(stack.broker.bootstrap_servers, topics, settings.partitions)
    for service in stack.services:
        console.print(f"starting {service.name} {service.address}".rstrip())
        supervisor.start(service, timeout_s=settings.ready_timeout_s)


def _table(services: list[Service], root: Path) -> Table:
    table = Table(title=f"fulmen up: {root}")
    for column in ("service", "pid", "address", "log"):
        table.add_column(column, overflow="fold")
    for service in services:
        log = service.log.relative_to(root) if service.log.is_relative_to(root) else service.log
        table.add_row(service.name, str(service.pid or "—"), service.address, str(log))
    return table


def _write_state(path: Path, stack: Stack, services: list[Service]) -> None:
    document = {
        "services": [
            {"name": s.name, "pid": s.pid, "address": s.address, "log": str(s.log)}
            for s in services
        ],
        "kafka": stack.broker.bootstrap_servers,
        "store_url": stack.store_url,
        "policy_url": stack.policy_url,
        "worker_metrics_url": stack.worker_metrics_url,
        "api_key_file": str(stack.api_key_file),
    }
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(document, indent=2) + "\n")
    partial.replace(path)  # whoever sees the file sees all of it


def _write_key(path: Path, key: str) -> None:
    """The policy server's key for this run, readable by this user only."""
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(key + "\n")


def _refuse_if_up(state: Path) -> None:
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        pids = [s["pid"] for s in json.loads(state.read_text())["services"] if s["pid"]]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 0)
                raise UpError(f"a stack is up in {state.parent} (pid {pid}); stop it first")
