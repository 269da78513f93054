"""One ``qkdnet serve`` per data folder: a lock file (``DIR/serve.lock``) holding the
server's PID and, once it listens, its O&M URL, locked with ``fcntl.flock`` for the life of
the process. The kernel drops the lock when the process ends however it ends (SIGKILL too),
so a stale file never blocks a restart; the file itself is left in place, because removing
a lock file races with a process that has just opened it.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from qkdnet.errors import QkdnetError

LOCK_NAME = "serve.lock"


class FolderInUse(QkdnetError):
    """Another live process serves the data folder."""

    def __init__(self, folder: Path, pid: str, om_url: str) -> None:
        self.folder = folder
        super().__init__(f"{folder} already served by PID {pid}, O&M at {om_url}")


class FolderLock:
    """The held lock of a data folder; :meth:`acquire` makes one."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, folder: Path) -> FolderLock:
        """Lock ``folder`` (made if missing) for this process and write its PID; FolderInUse
        naming the holder's PID and O&M URL if another process holds it."""
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / LOCK_NAME
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode("utf-8", "replace").splitlines()
            os.close(fd)
            pid = holder[0] if holder and holder[0] else "unknown"
            # the holder writes its URL only once it listens
            url = holder[1] if len(holder) > 1 else "(not listening yet)"
            raise FolderInUse(folder, pid, url) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)  # a crashed holder's PID and URL
        lock = cls(path, fd)
        lock._write(f"{os.getpid()}\n")
        return lock

    def announce(self, om_url: str) -> None:
        """Add the O&M URL, for the message a second server gets."""
        self._write(f"{os.getpid()}\n{om_url}\n")

    def release(self) -> None:
        """Unlock (closing the file is enough); the file stays, emptied."""
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)
        finally:
            os.close(self._fd)
            self._fd = None

    def _write(self, text: str) -> None:
        # write before truncating: a reader never sees a shorter text than the one before
        assert self._fd is not None
        data = text.encode()
        os.pwrite(self._fd, data, 0)
        os.ftruncate(self._fd, len(data))
