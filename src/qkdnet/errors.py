"""The project's exception tree.

    QkdnetError
     └── ParameterError   a value is outside the range a model or command accepts

Every error message names the offending parameter and the allowed range, on one line, and
never contains key material.
"""

from __future__ import annotations


class QkdnetError(Exception):
    """Base class of every error qkdnet raises on purpose."""


class ParameterError(QkdnetError, ValueError):
    """A parameter is outside its allowed range.

    ``name`` is the parameter as the user spells it (``mu``, ``--loss``), ``allowed`` the
    range or rule in words.
    """

    def __init__(self, name: str, value: object, allowed: str) -> None:
        self.name = name
        self.value = value
        self.allowed = allowed
        super().__init__(f"{name}={_show(value)} is not allowed: {allowed}")


def _show(value: object) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
