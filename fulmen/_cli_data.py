"""`fulmen worker` and `fulmen sql`: the data plane, events streamed into the store and
the store queried. Registered on the `fulmen` app in `fulmen/cli.py`."""

from __future__ import annotations

import typer


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
