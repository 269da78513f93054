"""What a node's key store offers the Key Manager: the :class:`KeyStore` protocol and the
records it exchanges. Two implementations: :mod:`qkdnet.keys.store` (SQLite, durable) and
:mod:`qkdnet.keys.memory_store` (in memory, for the twin and property tests).

Key material on a KM-link arrives in blocks (both ends get identical blocks with the same
sequence number) and is kept in units of :data:`UNIT_BYTES`. Each block is owned by one
direction: at one end it is *outbound* (this node pads what it sends with it), at the other
*inbound*. So the two ends never spend the same bits for different messages. A sender takes
outbound units from the front of its pool and names them (:class:`UnitRange`); the receiver
takes exactly those units. Every unit is used once and deleted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

#: Key material is stored, taken and deleted in units of this many bytes (256 bits).
UNIT_BYTES = 32
UNIT_BITS = UNIT_BYTES * 8


@dataclass(frozen=True, slots=True)
class UnitRange:
    """``count`` consecutive units of block ``block`` of a KM-link, from unit ``start``."""

    block: int
    start: int
    count: int


@dataclass(frozen=True, slots=True)
class HeldKey:
    """A key held for an SAE pair under its key_ID (material never logged)."""

    key_id: str
    master_sae: str
    slave_sae: str
    material: bytes

    def __repr__(self) -> str:  # keep key material out of logs and tracebacks
        return (f"HeldKey(key_id={self.key_id!r}, master_sae={self.master_sae!r}, "
                f"slave_sae={self.slave_sae!r}, material=<{len(self.material)} bytes>)")


class KeyStore(Protocol):
    """One node's key store. Every method is atomic: it happens whole or not at all, and a
    refusal raises a :class:`~qkdnet.errors.KeyStoreError` having changed nothing."""

    node: str

    def deposit(self, km_link: str, block: int, material: bytes, outbound: bool) -> None:
        """Store a block of QKD-key (a multiple of UNIT_BYTES). Depositing the same block
        again is a no-op; raises PoolFull when the link's capacity would be exceeded."""

    def room(self, km_link: str) -> int:
        """How many more bytes the link's pool accepts before PoolFull."""

    def pool_bytes(self, km_link: str, outbound: bool) -> int:
        """Unused bytes of the link's outbound (or inbound) pool."""

    def take_outbound(self, km_link: str, units: int) -> tuple[tuple[UnitRange, ...], bytes]:
        """Take and delete the first ``units`` outbound units; NotEnoughKey if short."""

    def take_inbound(self, km_link: str, ranges: tuple[UnitRange, ...]) -> bytes:
        """Take and delete exactly the named inbound units; PadMismatch if any is missing."""

    def hold_key(self, key: HeldKey) -> None:
        """Keep a key for its slave SAE under its key_ID (unique)."""

    def release_keys(self, key_ids: list[str], master_sae: str, caller: str) -> list[HeldKey]:
        """Hand the keys to ``caller`` and delete them, all or none: KeyNotFound if any
        is not held (or was held for another master), NotAuthorized if ``caller`` is not
        their slave."""

    def held_count(self, master_sae: str, slave_sae: str) -> int:
        """How many keys are held for the pair."""
