"""How every command reports a user's mistake: one line naming the parameter and its
allowed range on stderr, and exit code 2 (no traceback).

The same holds for what the machine refuses: an output folder that cannot be made or
written, a port another server holds. Commands check their outputs and ports before the
work (:func:`writable_file`, :func:`writable_folder`, :func:`free_port`), so that a long run
does not fail at its end; :func:`guard` also turns any such ``OSError`` that comes later
(a disk filling up, a port taken in between) into the same one line.
"""

from __future__ import annotations

import errno
import os
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn, TypeVar

import typer

from qkdnet.errors import ParameterError, QkdnetError

_T = TypeVar("_T")


def fail(message: str) -> NoReturn:
    """Print ``qkdnet: error: <message>`` on stderr and exit with code 2."""
    print(f"qkdnet: error: {message}", file=sys.stderr)
    raise typer.Exit(code=2)


def guard(job: Callable[[], _T]) -> _T:
    """Run ``job``; a user's mistake (a :class:`~qkdnet.errors.QkdnetError`) or a file or
    socket the system refuses (an ``OSError``) becomes one line on stderr and exit code 2."""
    try:
        return job()
    except QkdnetError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(os_problem(exc))


def os_problem(exc: OSError) -> str:
    """An ``OSError`` in one line: the file and the system's reason, or the address in use."""
    if exc.errno == errno.EADDRINUSE:
        return f"address in use: {exc.strerror or exc} (another server listens there)"
    if exc.filename is not None and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    return str(exc)


def writable_folder(option: str, folder: Path, make: bool = True) -> Path:
    """``folder``, made with its parents if missing (with ``make`` False only checked, for a
    command that makes it itself, privately); ParameterError naming ``option`` when it
    cannot be made or written."""
    return _writable(option, folder, folder, make)


def writable_file(option: str, path: Path, what: str = "file") -> Path:
    """``path``, when its folder exists and can be written; ParameterError naming ``option``
    (and ``what`` the file is) when the folder is missing or cannot be written, or ``path``
    is a folder. A missing folder is a mistake in the path more often than a wish: it is
    not made (output folders, ``--out DIR``, are)."""
    if path.is_dir():
        raise ParameterError(option, path, "is a folder; name a file")
    folder = path.parent
    if not folder.is_dir():
        problem = "is a file" if folder.exists() else "does not exist"
        raise ParameterError(option, path, f"cannot write the {what}: folder {folder} "
                             f"{problem}")
    _writable(option, folder, path, False)
    return path


def _writable(option: str, folder: Path, shown: Path, make: bool) -> Path:
    if make:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            pass  # a file where the folder should be: named below
        except OSError as exc:
            raise ParameterError(option, shown, f"folder {folder} cannot be made: "
                                 f"{exc.strerror}") from None
    existing = next(p for p in (folder, *folder.absolute().parents) if p.exists())
    if not existing.is_dir():
        raise ParameterError(option, shown, f"{existing} is a file, not a folder")
    _check_writable(option, shown, existing)
    return folder


def _check_writable(option: str, shown: Path, folder: Path) -> None:
    # a real probe, not os.access: root passes access() where the file system refuses
    probe = folder / f".qkdnet-write-probe-{os.getpid()}"
    try:
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise ParameterError(option, shown, f"{folder} cannot be written: "
                             f"{exc.strerror}") from None


def free_port(option: str, host: str, port: int) -> int:
    """``port``, when a server may listen on it at ``host`` (0, any free port, always may);
    ParameterError naming ``option`` when another server holds it or the address is not
    this machine's."""
    if port == 0:
        return port
    if not 0 < port < 65536:
        raise ParameterError(option, port, "a TCP port, 1-65535 (0: any free port)")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ParameterError("--host", host, f"cannot be resolved: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        # the same reuse rule as the servers: a port in TIME_WAIT is free for them too
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ParameterError(option, port, f"port {port} on {host} is in use by "
                                     f"another server; pick another (0: any free "
                                     f"port)") from None
            raise ParameterError("--host", host, f"cannot listen there: "
                                 f"{exc.strerror}") from None
    return port
