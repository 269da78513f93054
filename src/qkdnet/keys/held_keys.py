"""Keys held in memory for slave SAEs under their key_IDs, with the rules every key store
applies to them (:mod:`qkdnet.keys.pool`): the memory store and the twin's amount store
keep their held keys here."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from qkdnet.errors import KeyStoreError
from qkdnet.keys.pool import HeldKey, check_release, is_expired


class HeldKeys:
    """Held keys by key_ID, counted per (master, slave) SAE pair."""

    def __init__(self) -> None:
        self._keys: dict[str, HeldKey] = {}
        self._pairs: Counter[tuple[str, str]] = Counter()
        self._held_at: dict[str, float] = {}  # key_ID: when it was held (s)

    def hold(self, keys: Sequence[HeldKey], now: float) -> None:
        """Keep ``keys`` as held at ``now`` (s), all or none; KeyStoreError if a key_ID is
        already held (or given twice)."""
        ids = [key.key_id for key in keys]
        for key_id in ids:
            if key_id in self._keys or ids.count(key_id) > 1:
                raise KeyStoreError(f"key_ID {key_id!r} is already held")
        for key in keys:
            self._keys[key.key_id] = key
            self._held_at[key.key_id] = now
            self._pairs[key.master_sae, key.slave_sae] += 1

    def release(self, key_ids: list[str], master_sae: str, caller: str) -> list[HeldKey]:
        """Hand the keys to ``caller`` in the order asked and forget them, all or none
        (:func:`~qkdnet.keys.pool.check_release` says when not)."""
        keys = check_release(key_ids, [self._keys.get(k) for k in key_ids], master_sae, caller)
        for key in keys:
            self._forget(key)
        return keys

    def expire(self, now: float, ttl_s: float) -> int:
        """Forget every key past its time to live (:func:`~qkdnet.keys.pool.is_expired`);
        how many."""
        old = [self._keys[k] for k, at in self._held_at.items() if is_expired(at, now, ttl_s)]
        for key in old:
            self._forget(key)
        return len(old)

    def count(self, master_sae: str, slave_sae: str) -> int:
        """How many keys are held for the pair."""
        return self._pairs[master_sae, slave_sae]

    def pair_of(self, key_id: str) -> tuple[str, str] | None:
        """The (master, slave) SAE pair a key_ID is held for, None if it is not held."""
        key = self._keys.get(key_id)
        return None if key is None else (key.master_sae, key.slave_sae)

    def clear(self) -> None:
        """Forget every held key."""
        self._keys.clear()
        self._held_at.clear()
        self._pairs.clear()

    def _forget(self, key: HeldKey) -> None:
        del self._keys[key.key_id]
        del self._held_at[key.key_id]
        self._pairs[key.master_sae, key.slave_sae] -= 1
