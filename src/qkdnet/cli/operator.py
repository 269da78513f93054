"""``qkdnet operator add|list|remove``: the operators of a data folder's O&M port."""

from __future__ import annotations

import getpass
import sys
from pathlib import Path
from typing import Annotated

import typer

from qkdnet.cli.guard import fail, guard
from qkdnet.cli.options import DATA_FOLDER

commands = typer.Typer(help="Operators of the O&M port: viewer (read), operator (faults, "
                       "acknowledgements), admin (operators).", no_args_is_help=True)

FolderOption = Annotated[Path, typer.Option("--dir", "-d", help="Data folder of `qkdnet "
                                            "serve` (operators.json, audit.log).")]


def _password(password_file: Path | None) -> str:
    """From ``password_file`` (its first line; ``-``: stdin), else asked twice on the
    terminal; never from the command line, where other users see it in ``ps``."""
    if password_file is not None:
        text = sys.stdin.read() if str(password_file) == "-" else password_file.read_text(
            encoding="utf-8")
        return text.splitlines()[0] if text else ""
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        fail("the two passwords differ")
    return first


def _audit(folder: Path, event: str, name: str, **what: object) -> None:
    from qkdnet.live.audit import AuditLog, audit_file

    AuditLog(audit_file(folder)).record(event, name, f"cli:{getpass.getuser()}", **what)


@commands.command("add")
def operator_add(
    name: Annotated[str, typer.Argument(help="Login name.")],
    role: Annotated[str, typer.Option(help="viewer, operator or admin.")],
    folder: FolderOption = DATA_FOLDER,
    password_file: Annotated[Path | None, typer.Option(
        help="Read the password from the first line of this file ('-': stdin) instead "
        "of asking for it.")] = None,
    replace: Annotated[bool, typer.Option(help="Set a new role and password for an "
                                          "existing operator.")] = False,
) -> None:
    """Add an operator (password hashed by scrypt into DIR/operators.json, mode 0600). A
    running `qkdnet serve` sees the change at once."""
    from qkdnet.live.data_folder import open_data_folder
    from qkdnet.live.operators import OperatorFile

    def add() -> None:
        open_data_folder(folder)
        operator = OperatorFile(folder).add(name, role, _password(password_file), replace)
        _audit(folder, "operator-add", operator.name, role=operator.role)
        print(f"{operator.name}: {operator.role}")

    guard(add)


@commands.command("list")
def operator_list(folder: FolderOption = DATA_FOLDER) -> None:
    """List the operators and their roles."""
    from qkdnet.live.operators import OperatorFile

    def show() -> None:
        for operator in OperatorFile(folder).list():
            print(f"{operator.name}\t{operator.role}")

    guard(show)


@commands.command("remove")
def operator_remove(
    name: Annotated[str, typer.Argument(help="Login name.")],
    folder: FolderOption = DATA_FOLDER,
) -> None:
    """Remove an operator; their sessions end at their next request."""
    from qkdnet.live.data_folder import open_data_folder
    from qkdnet.live.operators import OperatorFile

    def remove() -> None:
        open_data_folder(folder)
        OperatorFile(folder).remove(name)
        _audit(folder, "operator-remove", name)
        print(f"{name}: removed")

    guard(remove)
