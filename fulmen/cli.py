"""The `fulmen` command.

The commands live in `fulmen/_cli_*.py` by what they drive: the local stack
(`_cli_stack`), the data plane (`_cli_data`), training and releases (`_cli_training`),
serving (`_cli_serving`) and the services Fulmen runs on (`_cli_services`: the `kafka`,
`kube` and `store` groups). They are registered here, in the order `fulmen --help` lists.
"""

from __future__ import annotations

import os
import sys

import typer

from fulmen._cli_data import sql, worker
from fulmen._cli_errors import FriendlyErrors
from fulmen._cli_services import kafka_app, kube_app, store_app
from fulmen._cli_serving import gateway, serve
from fulmen._cli_stack import dashboard, demo, up_command
from fulmen._cli_training import rollback, rollout, scheduler, train

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


app.command()(demo)
app.command("up")(up_command)
app.command()(dashboard)
app.command()(worker)
app.command()(train)
app.command()(scheduler)
app.command()(rollout)
app.command()(rollback)
app.command()(serve)
app.command()(gateway)
app.command()(sql)


if __name__ == "__main__":
    app()
