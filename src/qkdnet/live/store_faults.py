"""Key stores that failed a write (disk full, read-only, I/O error), why, and when the key
supply tries each again: :class:`StoreFaults`, kept by the supply pump
(:mod:`qkdnet.live.supply_pump`) and read by the KMEs and the reports to the NMS.

Why back-off: a full disk stays full for a while; probing it at every pump (20 times a
second) would fill the log and the CPU for nothing, while a bounded back-off still finds
room within :data:`MAX_BACKOFF_S` of it being freed.

Why a scratch file before the store's own probe: on a full disk SQLite can still take a
small write inside pages its file already holds (freed by a take or a release), so a probe
through SQLite alone ends the fault while the disk has no room and the next deposit brings
it back. :func:`check_room` asks the file system for :data:`ROOM_PROBE_BYTES` of new space
first, so a fault ends only when the disk really has room.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("qkdnet.keys")

#: First wait before a faulty store is tried again (s); each failed try doubles it.
FIRST_BACKOFF_S = 0.1
#: Longest wait between two tries (s): how long a freed disk may go unnoticed.
MAX_BACKOFF_S = 2.0
#: Bytes of new space (a scratch file, written, fsynced and removed) a faulty store's
#: folder must take before the store is tried again: more than a pump's deposits need.
ROOM_PROBE_BYTES = 1 << 20
_CHUNK = b"\0" * (1 << 16)


@dataclass
class _Fault:
    cause: str
    wait_s: float
    retry_at: float
    tries: int = 0


class StoreFaults:
    """The nodes whose key store cannot be written, each with SQLite's words for the cause
    and its next try (times in s on the caller's clock). Each fault is logged once when it
    is found and once when it ends, however many tries it takes."""

    def __init__(self, first_s: float = FIRST_BACKOFF_S, max_s: float = MAX_BACKOFF_S) -> None:
        self.first_s, self.max_s = first_s, max_s
        self._faults: dict[str, _Fault] = {}

    def failed(self, node: str, cause: str, now: float) -> None:
        """A write to ``node``'s store failed at ``now``: a new fault, or one more failed
        try of a known one (the wait doubles, up to ``max_s``)."""
        fault = self._faults.get(node)
        if fault is None:
            log.error("key store of node %s cannot be written (%s): its KM-links get no key "
                      "until it can; retrying with back-off", node, cause)
            self._faults[node] = _Fault(cause, self.first_s, now + self.first_s)
            return
        fault.cause = cause
        fault.tries += 1
        fault.wait_s = min(fault.wait_s * 2, self.max_s)
        fault.retry_at = now + fault.wait_s

    def recovered(self, node: str) -> None:
        """``node``'s store took a write again."""
        fault = self._faults.pop(node, None)
        if fault is not None:
            log.warning("key store of node %s writes again after %d failed tries; its "
                        "KM-links get key again", node, fault.tries)

    def cause(self, node: str) -> str | None:
        """Why ``node``'s store cannot be written, None when it can."""
        fault = self._faults.get(node)
        return None if fault is None else fault.cause

    def due(self, node: str, now: float) -> bool:
        """Whether a faulty ``node``'s store is to be tried again at ``now``."""
        fault = self._faults.get(node)
        return fault is not None and now >= fault.retry_at

    def wait_s(self, node: str) -> float | None:
        """The present wait between tries of ``node``'s store (s), None if it is fine."""
        fault = self._faults.get(node)
        return None if fault is None else fault.wait_s

    @property
    def nodes(self) -> frozenset[str]:
        """The nodes whose store is at fault now."""
        return frozenset(self._faults)


def fault_message(node: str, cause: str) -> str:
    """What a KME answers (with 503) while ``node``'s key store cannot be written."""
    return (f"the key store of node {node} cannot be written ({cause}); key delivery "
            f"resumes by itself once the store can be written again")


def room_probe_file(store: Path) -> Path:
    """The scratch file :func:`check_room` writes beside the store file ``store``."""
    return store.with_name(store.name + ".room-probe")


def check_room(store: Path, size: int = ROOM_PROBE_BYTES) -> None:
    """Write ``size`` bytes of zeros to a scratch file beside ``store``, fsync it (a file
    system that allocates late reports a full disk only then) and remove it; OSError when
    the disk has not that much new room or the folder takes no new file."""
    path = room_probe_file(store)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        written = 0
        while written < size:
            written += os.write(fd, _CHUNK[: size - written])
        os.fsync(fd)
    finally:
        os.close(fd)
        os.unlink(path)  # zeros only, but the room is given back at once either way
