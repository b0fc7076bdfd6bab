"""The `fulmen` command."""

from __future__ import annotations

import typer

app = typer.Typer(
    no_args_is_help=True, help="Fulmen: train agents continually from their own traffic."
)
kafka_app = typer.Typer(no_args_is_help=True, help="A local Apache Kafka broker for development.")
app.add_typer(kafka_app, name="kafka")


@app.command()
def version() -> None:
    """Print the installed Fulmen version."""
    from importlib.metadata import version as package_version

    typer.echo(package_version("fulmen"))


@app.command()
def demo(rollouts: int = typer.Option(50, min=1, help="How many agent rollouts to run.")) -> None:
    """Run an instrumented agent on the embedded default and show what it emitted."""
    from fulmen._demo import run_demo

    run_demo(rollouts=rollouts)


@kafka_app.command("jars")
def kafka_jars() -> None:
    """Fetch Kafka's jars from Maven Central into the cache (once)."""
    from fulmen.local import ensure_kafka_jars

    typer.echo(ensure_kafka_jars())


@kafka_app.command("up")
def kafka_up(port: int = typer.Option(9092, help="Port of the PLAINTEXT listener.")) -> None:
    """Start a single-node KRaft broker on 127.0.0.1 that outlives this command."""
    from fulmen.local import up

    typer.echo(f"kafka running at {up(port)}")


@kafka_app.command("down")
def kafka_down() -> None:
    """Stop the broker started by `fulmen kafka up`."""
    from fulmen.local import down

    typer.echo("kafka stopped" if down() else "no kafka was running")
