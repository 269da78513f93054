"""The ``qkdnet`` command line: one entry point, a module per command group. The commands
parse arguments, call the layers and drivers, and print; the rules live below them.

Errors a user can fix (a bad value, an unknown type) print one line naming the parameter
and its allowed range, and exit with code 2 (:mod:`qkdnet.cli.guard`).
"""

from __future__ import annotations

from importlib.metadata import version
from typing import Annotated

import typer

from qkdnet.cli import (
    apps,
    deploy,
    live,
    nodes,
    operator,
    pki,
    plan,
    quantum,
    satellite,
    sweep,  # noqa: F401 (registers `qkdnet twin sweep` on the twin group)
    topology,
    twin,
)

app = typer.Typer(
    help="qkdnet: a carrier-grade quantum key distribution network.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
)


def _print_version(asked: bool) -> None:
    if asked:
        print(f"qkdnet {version('qkdnet')}")
        raise typer.Exit()


@app.callback()
def main(
    show_version: Annotated[bool, typer.Option(
        "--version", callback=_print_version, is_eager=True,
        help="Print the installed version and exit.")] = False,
) -> None:
    """qkdnet: a carrier-grade quantum key distribution network."""


app.add_typer(quantum.commands)
app.add_typer(topology.commands, name="topology")
app.add_typer(pki.commands, name="pki")
app.add_typer(operator.commands, name="operator")
app.add_typer(twin.commands)
app.add_typer(plan.commands)
app.add_typer(live.commands)
app.add_typer(nodes.commands)
app.add_typer(apps.commands, name="app")
app.add_typer(deploy.commands, name="deploy")
app.add_typer(satellite.commands, name="satellite")

__all__ = ["app"]
