"""The key-file device adapter on a real folder: lists it and reads the new key files; the
format and the record of what was delivered are :mod:`qkdnet.quantum.keyfile`'s.

Errors name the file by its full path (:class:`~qkdnet.errors.ScenarioError`).
"""

from __future__ import annotations

from pathlib import Path

from qkdnet.errors import ScenarioError
from qkdnet.quantum.key_source import KeyBlock
from qkdnet.quantum.keyfile import KeyFileLedger


class KeyFileSource:
    """The blocks a device writes into ``folder`` for KM-link ``km_link``; implements
    :class:`~qkdnet.quantum.key_source.KeySource`. Each block is delivered once."""

    def __init__(self, folder: Path, km_link: str) -> None:
        self.folder = Path(folder)
        self.km_link = km_link
        self._ledger = KeyFileLedger(km_link)

    def blocks(self, now: float) -> list[KeyBlock]:
        """The blocks whose files appeared since the last call, in block order. ``now`` is
        ignored: a file is there or not (it is part of the KeySource interface)."""
        listing = self._listing()
        try:
            names = self._ledger.pending(listing)
            return self._ledger.accept([(name, self._read(name)) for name in names])
        except ScenarioError as e:  # the ledger names a file; say where it is
            raise e.located(str(self.folder / (e.source or "")), None) from e

    def _listing(self) -> list[str]:
        try:
            return [f.name for f in self.folder.iterdir()]
        except OSError as e:
            raise ScenarioError("", f"cannot read the key folder: {e.strerror}",
                                source=str(self.folder)) from e

    def _read(self, name: str) -> bytes:
        try:
            return (self.folder / name).read_bytes()
        except OSError as e:
            raise ScenarioError("", f"cannot read the key file: {e.strerror}",
                                source=name) from e

    def __repr__(self) -> str:
        return f"KeyFileSource(folder={str(self.folder)!r}, km_link={self.km_link!r})"
