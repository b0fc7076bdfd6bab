"""The `fulmen` command."""

import typer

app = typer.Typer(no_args_is_help=True, help="Fulmen: train agents continually from their own traffic.")


@app.command()
def version() -> None:
    """Print the installed Fulmen version."""
    from importlib.metadata import version as pkg_version

    typer.echo(pkg_version("fulmen"))
