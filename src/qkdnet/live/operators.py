"""The operators of a data folder's O&M port: who may read, inject faults, manage users.

They live in ``DIR/operators.json`` (mode 0600: the process umask is 0o077), each with a
role and a password hashed by scrypt (:func:`hashlib.scrypt`, a random 16-byte salt per
operator; cost parameters stored with each hash so they can be raised later). The
password itself is never stored, logged or shown. ``qkdnet serve`` re-reads the file
when it changes, so ``qkdnet operator add`` and ``remove`` take effect without a restart.

Roles are ordered: each has the rights of those before it.

- ``viewer``: read the console, the /api/* endpoints and the event stream;
- ``operator``: also inject and end faults and acknowledge alarms;
- ``admin``: also manage operators (``/api/operators``, :mod:`qkdnet.live.om_operators`;
  or ``qkdnet operator`` on the data folder).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qkdnet.errors import ParameterError

ROLES = ("viewer", "operator", "admin")
#: scrypt cost: N (CPU/memory, a power of two), r (block size), p (parallelism); about
#: 16 MiB and a few tens of ms per hash.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
#: Bytes of each derived hash and of each salt.
HASH_BYTES, SALT_BYTES = 32, 16
#: Fewest characters of a password.
MIN_PASSWORD = 8
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
#: A salt and hash checked for unknown names, so that a failed login takes the same time
#: whether the name exists or not.
_DUMMY_SALT = secrets.token_bytes(SALT_BYTES)


def operators_file(folder: Path) -> Path:
    """Where the operators of data folder ``folder`` are kept."""
    return folder / "operators.json"


def role_allows(role: str, needed: str) -> bool:
    """Whether ``role`` has the rights of ``needed``."""
    return role in ROLES and ROLES.index(role) >= ROLES.index(needed)


def check_name(name: str) -> str:
    """``name`` if it is a valid operator name, else ParameterError."""
    if not _NAME.fullmatch(name):
        raise ParameterError("NAME", name, "1 to 64 letters, digits, '.', '_' or '-', "
                             "starting with a letter or digit")
    return name


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p,
                          maxmem=256 * 1024 * 1024, dklen=HASH_BYTES)


@dataclass(frozen=True)
class Operator:
    """One operator: a name and a role (never the password)."""

    name: str
    role: str


class OperatorFile:
    """The operators of one data folder, read from disk at every call that needs them
    (cached while the file is unchanged)."""

    def __init__(self, folder: Path) -> None:
        self.path = operators_file(folder)
        self._seen: tuple[int, int] | None = None
        self._entries: dict[str, dict[str, Any]] = {}

    def _load(self) -> dict[str, dict[str, Any]]:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._seen, self._entries = None, {}
            return {}
        if self._seen != (st.st_mtime_ns, st.st_size):
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
                entries = data["operators"]
                if not isinstance(entries, dict):
                    raise TypeError("operators must be an object")
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise ParameterError("--dir", str(self.path), f"is not an operators file "
                                     f"({exc})") from exc
            self._seen, self._entries = (st.st_mtime_ns, st.st_size), entries
        return self._entries

    def list(self) -> list[Operator]:
        """Every operator, by name."""
        return [Operator(n, e["role"]) for n, e in sorted(self._load().items())]

    def get(self, name: str) -> Operator | None:
        """The operator ``name``, if there is one."""
        entry = self._load().get(name)
        return Operator(name, entry["role"]) if entry is not None else None

    def verify(self, name: str, password: str) -> Operator | None:
        """The operator if ``password`` is theirs, else None (unknown name or wrong
        password alike, in about the same time)."""
        entry = self._load().get(name)
        if entry is None:
            _scrypt(password, _DUMMY_SALT, SCRYPT_N, SCRYPT_R, SCRYPT_P)
            return None
        try:
            salt, stored = bytes.fromhex(entry["salt"]), bytes.fromhex(entry["hash"])
            got = _scrypt(password, salt, int(entry["n"]), int(entry["r"]), int(entry["p"]))
        except (KeyError, ValueError, TypeError):
            return None  # a damaged entry never lets anyone in
        return Operator(name, entry["role"]) if hmac.compare_digest(got, stored) else None

    def add(self, name: str, role: str, password: str, replace: bool = False) -> Operator:
        """Add operator ``name`` with ``role`` (or, with ``replace``, set their role and
        password)."""
        check_name(name)
        if role not in ROLES:
            raise ParameterError("--role", role, ", ".join(ROLES))
        if len(password) < MIN_PASSWORD:
            raise ParameterError("password", "(not shown)",
                                 f"at least {MIN_PASSWORD} characters")
        entries = dict(self._load())
        if name in entries and not replace:
            raise ParameterError("NAME", name, "is already an operator (--replace to set "
                                 "a new role and password)")
        salt = secrets.token_bytes(SALT_BYTES)
        entries[name] = {"role": role, "salt": salt.hex(), "n": SCRYPT_N, "r": SCRYPT_R,
                         "p": SCRYPT_P,
                         "hash": _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P).hex()}
        self._write(entries)
        return Operator(name, role)

    def remove(self, name: str) -> None:
        """Remove operator ``name``; their sessions end at their next request."""
        entries = dict(self._load())
        if entries.pop(name, None) is None:
            raise ParameterError("NAME", name, "is no operator of this data folder")
        self._write(entries)

    def _write(self, entries: dict[str, dict[str, Any]]) -> None:
        """Atomically, created 0600 whatever the umask."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump({"operators": entries}, out, indent=1)
        os.replace(tmp, self.path)
        self._seen = None
