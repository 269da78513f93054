"""The data folder of ``qkdnet serve`` kept private: every key store holds pads and keys held
for slave SAEs, and the PKI folder holds private keys, so no other local user may read or
write any of it.

:func:`open_data_folder` sets the process umask to 0o077 before anything is created (so the
folder and its sub-folders are made 0700, every store, WAL, SHM and private key file 0600,
at creation: never a window in which they are readable), and refuses a folder or file that
already exists with access for group or others, naming the path and the ``chmod`` that fixes
it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from qkdnet.errors import QkdnetError

#: Permission bits a file or folder under the data folder must not have: any access by the
#: group or by others.
OPEN_BITS = 0o077
#: The umask serve runs under: new folders 0700, new files 0600.
PRIVATE_UMASK = 0o077
#: The files SQLite keeps beside a store.
STORE_SUFFIXES = ("", "-wal", "-shm", "-journal")


class UnsafePermissions(QkdnetError):
    """A file or folder with key material is open to other local users."""


def open_data_folder(folder: Path) -> None:
    """Make the process create only private files and folders (umask 0o077), refuse a
    data folder whose existing parts group or others may access, and create the folder
    0700 if missing."""
    os.umask(PRIVATE_UMASK)
    check_private(folder)
    folder.mkdir(parents=True, exist_ok=True)


def check_private(folder: Path) -> None:
    """UnsafePermissions naming the first path under ``folder`` (the folder itself, its
    ``stores`` and ``pki`` folders, every store with its WAL and SHM, every private key)
    that group or others may access; nothing missing is an error."""
    for path in _guarded(folder):
        try:
            mode = path.lstat().st_mode
        except FileNotFoundError:
            continue
        if mode & OPEN_BITS:
            wanted = "700" if stat.S_ISDIR(mode) else "600"
            raise UnsafePermissions(
                f"{path} is open to other users (mode {stat.S_IMODE(mode):04o}): it holds key "
                f"material; run `chmod {wanted} {path}` (or `chmod -R go-rwx {folder}`)")


def _guarded(folder: Path) -> list[Path]:
    """The folder, then what it holds that must stay private."""
    paths = [folder, folder / "stores", folder / "pki"]
    paths += [folder / "operators.json", folder / "audit.log"]  # password hashes, who did what
    stores = folder / "stores"
    if stores.is_dir():
        for store in sorted(stores.glob("*.sqlite")):
            paths += [Path(f"{store}{suffix}") for suffix in STORE_SUFFIXES]
    pki = folder / "pki"
    if pki.is_dir():
        paths += sorted(pki.rglob("*.key"))
    return paths
