"""How QKD-keys reach the Key Managers: :func:`deliver` puts one block from a device
(:class:`~qkdnet.quantum.key_source.KeyBlock`) into the key stores at both ends of its
KM-link.

Both ends of a KM-link receive identical blocks under the same block number, and each block
serves one direction: it is *outbound* at one end (that end pads what it sends with it) and
*inbound* at the other. Each end pads only with its outbound blocks, so both ends can pad
messages at the same time without ever spending the same key bits. The supply that hands a
block to both ends decides its direction once, for both (:func:`direction_of`): the
direction whose sender holds less key gets it, so a link whose key is asked for one way
serves that way at its whole rate, and key the other way is not made in vain; on a tie the
block number's parity decides (even blocks outbound at end ``a``).
"""

from __future__ import annotations

from qkdnet.keys.pool import KeyStore
from qkdnet.quantum.key_source import KeyBlock


def direction_of(block: KeyBlock, a_store: KeyStore, b_store: KeyStore) -> bool:
    """Whether ``block`` is outbound at the KM-link's end ``a`` (True) or ``b``, by
    :func:`outbound_at_a` on the two stores' outbound pools."""
    return outbound_at_a(block.block, a_store.pool_bytes(block.km_link, True),
                         b_store.pool_bytes(block.km_link, True))


def outbound_at_a(block: int, a_out_bytes: int, b_out_bytes: int) -> bool:
    """The direction rule for block number ``block``, given the outbound pool bytes at end
    ``a`` and at end ``b``: the end whose outbound pool holds less key sends with it; on a
    tie, even blocks go to ``a``."""
    return a_out_bytes < b_out_bytes if a_out_bytes != b_out_bytes else block % 2 == 0


def deliver(block: KeyBlock, a_store: KeyStore, b_store: KeyStore,
            a_out: bool | None = None) -> bool:
    """Deposit ``block`` at both ends of its KM-link: ``a_store`` is the key store at the
    KM-link's end ``a``, ``b_store`` at ``b``, outbound at ``a`` if ``a_out`` (by default
    as :func:`direction_of` says).

    All or nothing with respect to back-pressure: if either end lacks room for the block,
    nothing is deposited and the result is False (the two ends never diverge); True once
    both hold it. Depositing a block again is a no-op in the store, so a retry is safe if
    it names the direction the first try chose (a block one end holds must not be given
    the other direction at the other end).
    """
    size = len(block.material)
    if a_out is None:
        a_out = direction_of(block, a_store, b_store)
    if a_store.room(block.km_link, a_out) < size or b_store.room(block.km_link, not a_out) < size:
        return False
    a_store.deposit(block.km_link, block.block, block.material, a_out)
    b_store.deposit(block.km_link, block.block, block.material, not a_out)
    return True
