"""How QKD-keys reach the Key Managers: the :class:`KeySource` interface a QKD device (or its
emulator) offers, the :class:`KeyBlock` it hands over, and :func:`deliver`, which puts one
block into the key stores at both ends of its KM-link.

Both ends of a KM-link receive identical blocks under the same block number. The block
number's parity fixes the direction the block serves:

- an **even** block is *outbound* at the KM-link's end ``a`` and *inbound* at end ``b``;
- an **odd** block is *outbound* at ``b`` and *inbound* at ``a``.

Each end pads what it sends only with its outbound blocks, so both ends can pad messages at
the same time without ever spending the same key bits: no coordination, no collision.

Two sources implement the interface: :class:`qkdnet.keys.emulator.KeyEmulator` (random key
at a modelled rate) and :class:`qkdnet.keys.keyfile.KeyFileSource` (key files that a real
device writes into a folder). Sources are sans-I/O with respect to time: the driver passes
``now`` (s) and the source returns what became available up to then.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from qkdnet.errors import ParameterError
from qkdnet.keys.pool import UNIT_BYTES, KeyStore


@dataclass(frozen=True, slots=True)
class KeyBlock:
    """One block of QKD-key for KM-link ``km_link``, identical at both ends.

    ``block`` counts up from 0 per KM-link; ``material`` is a positive multiple of
    :data:`~qkdnet.keys.pool.UNIT_BYTES` bytes.
    """

    km_link: str
    block: int
    material: bytes

    def __post_init__(self) -> None:
        if self.block < 0:
            raise ParameterError("block", self.block, "block numbers are >= 0")
        size = len(self.material)
        if size == 0 or size % UNIT_BYTES:
            raise ParameterError("material", f"<{size} bytes>",
                                 f"a block holds a positive multiple of {UNIT_BYTES} bytes")

    def __repr__(self) -> str:  # keep key material out of logs and tracebacks
        return (f"KeyBlock(km_link={self.km_link!r}, block={self.block}, "
                f"material=<{len(self.material)} bytes>)")


class KeySource(Protocol):
    """Where a KM-link's QKD-key comes from: a device adapter or an emulator."""

    def blocks(self, now: float) -> list[KeyBlock]:
        """Blocks that became available up to time ``now`` (s), in block order. Each block
        is returned once; what the caller does not deposit is lost, as at a real device."""
        ...


def outbound_at(block: int, end_a: bool) -> bool:
    """Whether ``block`` is outbound at the KM-link's end ``a`` (``end_a``) or ``b``:
    even blocks are outbound at ``a``, odd ones at ``b``."""
    return (block % 2 == 0) == end_a


def deliver(block: KeyBlock, a_store: KeyStore, b_store: KeyStore) -> bool:
    """Deposit ``block`` at both ends of its KM-link: ``a_store`` is the key store at the
    KM-link's end ``a``, ``b_store`` at ``b``; the parity rule sets the direction.

    All or nothing with respect to back-pressure: if either end lacks room for the block,
    nothing is deposited and the result is False (the two ends never diverge); True once
    both hold it. Depositing a block again is a no-op in the store, so a retry is safe.
    """
    size = len(block.material)
    a_out = outbound_at(block.block, True)
    if a_store.room(block.km_link, a_out) < size or b_store.room(block.km_link, not a_out) < size:
        return False
    a_store.deposit(block.km_link, block.block, block.material, outbound_at(block.block, True))
    b_store.deposit(block.km_link, block.block, block.material, outbound_at(block.block, False))
    return True
