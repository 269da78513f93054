"""How every command reports a user's mistake: one line naming the parameter and its
allowed range on stderr, and exit code 2 (no traceback)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import NoReturn, TypeVar

import typer

from qkdnet.errors import QkdnetError

_T = TypeVar("_T")


def fail(message: str) -> NoReturn:
    """Print ``qkdnet: error: <message>`` on stderr and exit with code 2."""
    print(f"qkdnet: error: {message}", file=sys.stderr)
    raise typer.Exit(code=2)


def guard(job: Callable[[], _T]) -> _T:
    """Run ``job``; a user's mistake (a :class:`~qkdnet.errors.QkdnetError`) becomes one
    line on stderr and exit code 2."""
    try:
        return job()
    except QkdnetError as exc:
        fail(str(exc))
