"""Key from a real QKD device that writes its key blocks as files into a folder.

The format (one folder per KM-link end, the same files at both ends):

- one file per block, named ``<block number>.key`` with the block number in decimal ASCII
  digits (``0.key``, ``1.key``, ``17.key``; leading zeros are allowed, but one block has one
  file);
- the file holds the block's raw key bytes, nothing else: a positive multiple of
  :data:`~qkdnet.keys.pool.UNIT_BYTES` (32) bytes;
- a device writes a block under another name (say ``17.key.tmp``) and renames it to
  ``17.key`` when complete, so a ``.key`` file is always whole. Only names ending in
  ``.key`` count; every other file in the folder is ignored.

A ``.key`` file with a bad name or a wrong size is an error naming the file
(:class:`~qkdnet.errors.ScenarioError`); nothing is delivered from that call until the file
is fixed or removed. Files are read, never deleted: clearing used files is the device's or
the operator's business.
"""

from __future__ import annotations

import re
from itertools import pairwise
from pathlib import Path

from qkdnet.errors import ScenarioError
from qkdnet.keys.pool import UNIT_BYTES
from qkdnet.keys.supply import KeyBlock

SUFFIX = ".key"
_NUMBER = re.compile(r"[0-9]+")


class KeyFileSource:
    """The blocks a device writes into ``folder`` for KM-link ``km_link``; implements
    :class:`~qkdnet.keys.supply.KeySource`. Each block is delivered once."""

    def __init__(self, folder: Path, km_link: str) -> None:
        self.folder = Path(folder)
        self.km_link = km_link
        self._below = 0  # every block number below this one has been delivered
        self._delivered: set[int] = set()  # delivered block numbers >= _below

    def blocks(self, now: float) -> list[KeyBlock]:
        """The blocks whose files appeared since the last call, in block order. ``now`` is
        ignored: a file is there or not (it is part of the KeySource interface)."""
        new = [(n, f) for n, f in self._listing() if not self._was_delivered(n)]
        out = [KeyBlock(self.km_link, n, self._read(f)) for n, f in new]
        for block in out:
            self._delivered.add(block.block)
        while self._below in self._delivered:
            self._delivered.remove(self._below)
            self._below += 1
        return out

    def _was_delivered(self, number: int) -> bool:
        return number < self._below or number in self._delivered

    def _listing(self) -> list[tuple[int, Path]]:
        try:
            files = [f for f in self.folder.iterdir() if f.name.endswith(SUFFIX)]
        except OSError as e:
            raise ScenarioError("", f"cannot read the key folder: {e.strerror}",
                                source=str(self.folder)) from e
        numbered = sorted((_block_number(f), f) for f in files)
        for (n, first), (m, second) in pairwise(numbered):
            if n == m:
                raise ScenarioError("", f"two files hold block {n} (also {first.name})",
                                    source=str(second))
        return numbered

    def _read(self, file: Path) -> bytes:
        try:
            material = file.read_bytes()
        except OSError as e:
            raise ScenarioError("", f"cannot read the key file: {e.strerror}",
                                source=str(file)) from e
        if not material or len(material) % UNIT_BYTES:
            raise ScenarioError("", f"key file holds {len(material)} bytes; a block must "
                                f"be a positive multiple of {UNIT_BYTES} bytes",
                                source=str(file))
        return material

    def __repr__(self) -> str:
        return f"KeyFileSource(folder={str(self.folder)!r}, km_link={self.km_link!r})"


def _block_number(file: Path) -> int:
    stem = file.name.removesuffix(SUFFIX)
    if not _NUMBER.fullmatch(stem):
        raise ScenarioError("", f"key file name must be '<block number>{SUFFIX}' with a "
                            "decimal block number", source=str(file))
    return int(stem)
