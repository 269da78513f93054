"""Caps on concurrent connections, applied as a connection is accepted, before any TLS or
HTTP work.

A :class:`ListenerCaps` holds one listening socket's counts; :meth:`ListenerCaps.admit`
refuses a new connection when its listener, its client address or the whole process
(:class:`ConnectionBudget`) is at its cap, and an admitted connection gives its place back
when it closes (:meth:`ListenerCaps.released`). So a flood of idle connections to one port
(the O&M port, say) fills that port's cap, not the process's file handles, and every KME
still accepts. Where it is checked depends on who accepts:

- asyncio's event loop calls the listening socket's ``accept()``: a
  :class:`GuardedListener` checks there and closes a refused connection at once, before
  asyncio makes a transport of it (asyncio accepts up to a backlog's worth per wake-up:
  refusals that waited for their transport would pile up file handles in a flood);
- uvloop's (libuv accepts on the listening handle itself, never calling ``accept()``): the
  server's first protocol of each connection (``ConnectionGate`` in ``live/tls_server.py``)
  checks in ``connection_made`` and aborts a refused connection there, before any TLS.

Refusals are logged once per burst (the first refusal after :data:`BURST_QUIET_S` without
one), with the count of the burst before, never once per connection.

Out of file handles: on asyncio's loop the listening socket is a :class:`GuardedListener`,
whose ``accept()`` then closes a spare handle kept for the purpose, accepts the connection
and closes it, and reopens the spare: the classic way to drain the backlog instead of
busy-looping (or asyncio logging a traceback per attempt), logged with the refusals. On
uvloop's loop libuv does the same by itself (its own spare handle: ``uv__emfile_trick``)
and tells nobody: such connections are closed without a log line.
"""

from __future__ import annotations

import errno
import logging
import os
import resource
import socket
import time
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "BURST_QUIET_S",
    "FD_HEADROOM",
    "ConnectionBudget",
    "CountedConnection",
    "GuardedListener",
    "ListenerCaps",
    "ListenerLimits",
    "raise_file_limit",
]

log = logging.getLogger("qkdnet.live.connections")

BURST_QUIET_S = 10.0
"""Seconds without a refusal after which the next refusal is logged again."""

FD_HEADROOM = 256
"""File handles kept free beyond the connection caps: stores, logs, certificates, the
spare handle, and whatever the process opens later."""

MAX_REFUSALS_PER_ACCEPT = 64
"""Refusals one ``accept()`` call works through before it lets the loop run other work."""

_OUT_OF_HANDLES = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


@dataclass(frozen=True)
class ListenerLimits:
    """Caps of one listening socket: connections open at once, in all and per client
    address (IP, without the port)."""

    max_connections: int
    max_per_address: int

    def __post_init__(self) -> None:
        if not 1 <= self.max_per_address <= self.max_connections:
            raise ValueError(f"need 1 <= max_per_address ({self.max_per_address}) <= "
                             f"max_connections ({self.max_connections})")


#: The listeners of a deployment's services (controller, EMS, NMS intake): each reporting
#: node keeps one connection, and the nodes of a host share its address.
SERVICE_LIMITS = ListenerLimits(max_connections=8192, max_per_address=2048)


def raise_file_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit (more room for connections at no
    cost); the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):  # some systems cap below the hard limit (macOS)
            pass
    return soft


def _open_handles() -> int:
    """File handles this process holds now (Linux; elsewhere a guess of 64)."""
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 64


@dataclass
class ConnectionBudget:
    """The process-wide cap on connections open at once, shared by every listener."""

    max_connections: int = 1 << 31
    open: int = 0
    _spare: int | None = field(default=None, repr=False)

    def fit_below_file_limit(self, headroom: int = FD_HEADROOM) -> None:
        """Cap at the soft RLIMIT_NOFILE less the handles open now (call it once stores
        and listening sockets are open) and ``headroom`` (at least 16 connections), and
        keep a spare handle for draining the backlog when out of handles."""
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if soft == resource.RLIM_INFINITY:
            soft = 1 << 20
        self.max_connections = max(16, soft - _open_handles() - headroom)
        self.reserve_spare()

    def reserve_spare(self) -> None:
        """Hold one handle to give up when accept() finds none left."""
        if self._spare is None:
            try:
                self._spare = os.open(os.devnull, os.O_RDONLY)
            except OSError:
                self._spare = None

    def release_spare(self) -> bool:
        """Give up the spare handle; whether there was one."""
        if self._spare is None:
            return False
        os.close(self._spare)
        self._spare = None
        return True


class _Refusals:
    """One log line per burst of refusals on one listener."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.last = -float("inf")
        self.in_burst = 0

    def note(self, host: str, why: str) -> None:
        now = time.monotonic()
        if now - self.last >= BURST_QUIET_S:
            before = f" (previous burst: {self.in_burst} refused)" if self.in_burst else ""
            log.warning("port %d: refusing connections, %s (first from %s); further "
                        "refusals within %.0f s of each other are not logged%s",
                        self.port, why, host, BURST_QUIET_S, before)
            self.in_burst = 0
        self.in_burst += 1
        self.last = now


class ListenerCaps:
    """The open connections of one listening socket (port ``port``), in all and per client
    address, checked against ``limits`` and the process's ``budget``."""

    __slots__ = ("budget", "checked_at_accept", "limits", "open", "per_address", "refusals")

    def __init__(self, port: int, limits: ListenerLimits, budget: ConnectionBudget) -> None:
        self.limits, self.budget = limits, budget
        self.checked_at_accept = False
        """Whether the listening socket's ``accept()`` applies the caps (it has been called:
        asyncio's loop accepts); if not, the server's first protocol does."""
        self.open = 0
        self.per_address: dict[str, int] = {}
        self.refusals = _Refusals(port)

    def admit(self, host: str) -> bool:
        """Whether a new connection from ``host`` fits under the caps; if so it takes its
        place (give it back with :meth:`released`), if not the refusal is noted (and
        logged once per burst)."""
        why = self._over_cap(host)
        if why is not None:
            self.refusals.note(host, why)
            return False
        self.open += 1
        self.budget.open += 1
        self.per_address[host] = self.per_address.get(host, 0) + 1
        return True

    def _over_cap(self, host: str) -> str | None:
        if self.budget.open >= self.budget.max_connections:
            return f"the process cap of {self.budget.max_connections} connections is reached"
        if self.open >= self.limits.max_connections:
            return f"this port's cap of {self.limits.max_connections} connections is reached"
        if self.per_address.get(host, 0) >= self.limits.max_per_address:
            return f"the cap of {self.limits.max_per_address} connections per address is reached"
        return None

    def released(self, host: str) -> None:
        """A connection from ``host`` that :meth:`admit` let in has closed."""
        self.open -= 1
        self.budget.open -= 1
        left = self.per_address.get(host, 1) - 1
        if left > 0:
            self.per_address[host] = left
        else:
            self.per_address.pop(host, None)


class CountedConnection(socket.socket):
    """An accepted connection that gives its place in the caps back when closed."""

    _caps: ListenerCaps | None = None
    _host: str = ""

    def close(self) -> None:
        """Close, and free the place in the listener's caps (once)."""
        caps, self._caps = self._caps, None
        if caps is not None:
            caps.released(self._host)
        super().close()


class GuardedListener(socket.socket):
    """A listening socket whose ``accept()`` (the one asyncio's loop calls; uvloop's never
    does) enforces ``caps`` and drains the backlog when the process is out of file
    handles."""

    caps: ListenerCaps

    @classmethod
    def around(cls, sock: socket.socket, caps: ListenerCaps) -> GuardedListener:
        """``sock`` (bound and listening; taken over, not to be used after) guarded."""
        guarded = cls(sock.family, sock.type, sock.proto, fileno=sock.detach())
        guarded.caps = caps
        return guarded

    def accept(self) -> tuple[socket.socket, Any]:
        """The next connection within the caps; those beyond are closed at once. Raises
        BlockingIOError when none is waiting (asyncio's cue to wait for the next)."""
        caps = self.caps
        caps.checked_at_accept = True
        for _ in range(MAX_REFUSALS_PER_ACCEPT):
            fd, addr = self._accept_or_drain()
            host = str(addr[0]) if isinstance(addr, tuple) else str(addr)
            if caps.admit(host):
                conn = CountedConnection(self.family, self.type, self.proto, fileno=fd)
                conn._caps, conn._host = caps, host
                return conn, addr
            os.close(fd)
        raise BlockingIOError(errno.EAGAIN, "refused a burst; the rest on the next turn")

    def _accept_or_drain(self) -> tuple[int, Any]:
        while True:
            try:
                fd, addr = self._accept()  # type: ignore[attr-defined]
                return int(fd), addr
            except OSError as exc:
                if exc.errno not in _OUT_OF_HANDLES or not self.caps.budget.release_spare():
                    raise
                try:
                    fd, addr = self._accept()  # type: ignore[attr-defined]
                    os.close(fd)
                    self.caps.refusals.note(str(addr[0]),
                                            "the process is out of file handles")
                finally:
                    self.caps.budget.reserve_spare()
