"""The project's exception tree.

    QkdnetError
     ├── ParameterError   a value is outside the range a model or command accepts
     ├── ScenarioError    a network or scenario (file) is inconsistent or malformed
     ├── NoRoute          no usable relay route joins two nodes (now)
     └── KeyStoreError    a key store refuses an operation (messages never hold key material)
          ├── PoolFull        back-pressure: no room for more key on a KM-link
          ├── NotEnoughKey    a pool holds fewer bits than asked for
          ├── PadMismatch     the peer named pad units this store does not hold (desync)
          ├── KeyNotFound     no key held under that key_ID
          ├── NotAuthorized   the caller is not the SAE the key is held for
          └── StoreFault      the store's file cannot be written (disk full, read-only, I/O)

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


class ScenarioError(QkdnetError, ValueError):
    """A scenario is malformed: names the file, the line, the path in it and the problem.

    ``path`` is the place in the document, like ``qkd_links[3].b``; ``source`` and
    ``line`` are filled in when the scenario came from a file.
    """

    def __init__(self, path: str, problem: str, source: str | None = None,
                 line: int | None = None) -> None:
        self.path = path
        self.problem = problem
        self.source = source
        self.line = line
        where = ":".join(str(x) for x in (source, line) if x is not None)
        prefix = f"{where}: " if where else ""
        super().__init__(f"{prefix}{path}: {problem}" if path else f"{prefix}{problem}")

    def located(self, source: str, line: int | None) -> ScenarioError:
        """The same error, placed in ``source`` at ``line``."""
        return ScenarioError(self.path, self.problem, source, line)


class NoRoute(QkdnetError):
    """No usable relay route joins ``source`` and ``destination`` now: none exists, or
    every one has a KM-link down or short of key."""

    def __init__(self, source: str, destination: str, why: str = "") -> None:
        self.source = source
        self.destination = destination
        super().__init__(f"no KM-link route from {source!r} to {destination!r}"
                         + (f": {why}" if why else ""))


class KeyStoreError(QkdnetError):
    """A key store refuses an operation; nothing was changed."""


class PoolFull(KeyStoreError):
    """Back-pressure: the KM-link's pool is at its capacity."""


class NotEnoughKey(KeyStoreError):
    """The pool holds fewer bits than the operation needs."""


class PadMismatch(KeyStoreError):
    """Pad units named by the peer are not (or no longer) in this store."""


class KeyNotFound(KeyStoreError):
    """No key is held under the key_ID."""


class NotAuthorized(KeyStoreError):
    """The caller is not the SAE the key was reserved for."""


class StoreFault(KeyStoreError):
    """The store's file cannot be written or read: the disk is full, the file or its folder
    is read-only, or an I/O error. Nothing was changed; the same call may succeed once the
    cause is gone. ``node`` is the store's node, ``cause`` SQLite's words for it."""

    def __init__(self, node: str, cause: str, message: str) -> None:
        super().__init__(message)
        self.node = node
        self.cause = cause
