"""How QKD-keys reach the Key Managers: :func:`deliver` puts one block from a device
(:class:`~qkdnet.quantum.key_source.KeyBlock`) into the key stores at both ends of its
KM-link.

Both ends of a KM-link receive identical blocks under the same block number. The block
number's parity fixes the direction the block serves:

- an **even** block is *outbound* at the KM-link's end ``a`` and *inbound* at end ``b``;
- an **odd** block is *outbound* at ``b`` and *inbound* at ``a``.

Each end pads what it sends only with its outbound blocks, so both ends can pad messages at
the same time without ever spending the same key bits: no coordination, no collision.
"""

from __future__ import annotations

from qkdnet.keys.pool import KeyStore
from qkdnet.quantum.key_source import KeyBlock


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
