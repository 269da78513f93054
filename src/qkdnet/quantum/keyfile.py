"""Key from a real QKD device that writes its key blocks as files into a folder: the format
and its bookkeeping, free of I/O (:mod:`qkdnet.live.key_files` lists the folder and reads
the files).

The format (one folder per KM-link end, the same files at both ends):

- one file per block, named ``<block number>.key`` with the block number in decimal ASCII
  digits (``0.key``, ``1.key``, ``17.key``; leading zeros are allowed, but one block has one
  file);
- the file holds the block's raw key bytes, nothing else: a positive multiple of
  :data:`~qkdnet.quantum.key_source.UNIT_BYTES` (32) bytes;
- a device writes a block under another name (say ``17.key.tmp``) and renames it to
  ``17.key`` when complete, so a ``.key`` file is always whole. Only names ending in
  ``.key`` count; every other file in the folder is ignored.

A ``.key`` file with a bad name or a wrong size is an error naming the file
(:class:`~qkdnet.errors.ScenarioError` with the file name as ``source``); nothing is
delivered from that call until the file is fixed or removed. Files are read, never deleted:
clearing used files is the device's or the operator's business.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from itertools import pairwise

from qkdnet.errors import ScenarioError
from qkdnet.quantum.key_source import UNIT_BYTES, KeyBlock, whole_units

SUFFIX = ".key"
_NUMBER = re.compile(r"[0-9]+")


class KeyFileLedger:
    """Which of a device's key files for KM-link ``km_link`` have been delivered, and the
    blocks the others hold. Each block is delivered once."""

    def __init__(self, km_link: str) -> None:
        self.km_link = km_link
        self._below = 0  # every block number below this one has been delivered
        self._delivered: set[int] = set()  # delivered block numbers >= _below

    def pending(self, names: Iterable[str]) -> list[str]:
        """Of the file names in the device's folder, the key files not yet delivered, in
        block order. A ``.key`` name without a decimal block number, or two names for one
        block, raises ScenarioError naming the file."""
        numbered = sorted((block_number(n), n) for n in names if n.endswith(SUFFIX))
        for (n, first), (m, second) in pairwise(numbered):
            if n == m:
                raise ScenarioError("", f"two files hold block {n} (also {first})",
                                    source=second)
        return [name for n, name in numbered if not self._was_delivered(n)]

    def accept(self, files: Sequence[tuple[str, bytes]]) -> list[KeyBlock]:
        """The blocks that ``files`` (name, contents) hold, from now on delivered. All or
        nothing: a file of the wrong size raises ScenarioError naming it, and none of
        ``files`` counts as delivered."""
        for name, material in files:
            if not whole_units(len(material)):
                raise ScenarioError("", f"key file holds {len(material)} bytes; a block "
                                    f"must be a positive multiple of {UNIT_BYTES} bytes",
                                    source=name)
        out = [KeyBlock(self.km_link, block_number(name), material) for name, material in files]
        for block in out:
            self._delivered.add(block.block)
        while self._below in self._delivered:
            self._delivered.remove(self._below)
            self._below += 1
        return out

    def _was_delivered(self, number: int) -> bool:
        return number < self._below or number in self._delivered

    def __repr__(self) -> str:
        return f"KeyFileLedger(km_link={self.km_link!r}, delivered_below={self._below})"


def block_number(name: str) -> int:
    """The block number a key file named ``name`` holds; ScenarioError if the name is not
    ``<block number>.key``."""
    stem = name.removesuffix(SUFFIX)
    if not name.endswith(SUFFIX) or not _NUMBER.fullmatch(stem):
        raise ScenarioError("", f"key file name must be '<block number>{SUFFIX}' with a "
                            "decimal block number", source=name)
    return int(stem)
