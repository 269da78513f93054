"""A QKD device pair as its two Key Managers see it: each end's KM is an SAE of its own
end of the device (ETSI GS QKD 014), with Get status, Get key and Get key with key IDs.

:class:`DeviceEnd` is what a KM needs of its device; :class:`EmulatedDevice` is the
project's emulation of a device pair behind it: key made at the link's modelled rate into
a bounded buffer (a device discards key nobody fetches), handed to whichever end asks
first under fresh key_IDs, and held for the other end until it asks for them by key_ID,
each once. A vendor device (or the emulator served over HTTPS) is another implementation
of the same interface.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import Protocol

from qkdnet.errors import QkdnetError
from qkdnet.live.key_ids import new_key_id
from qkdnet.quantum.emulator import KeyEmulator


class DeviceError(QkdnetError):
    """The device refused a call (no such key_ID for this end, not enough key, not an end
    of this device); the message names why, never key material."""


class DeviceEnd(Protocol):
    """One end of a QKD device pair, as its KM (an SAE of the device) calls it."""

    @property
    def key_bytes(self) -> int:
        """Size of each key the device hands out (bytes)."""
        ...

    async def available(self) -> int:
        """Keys ready for this end to take now (Get status: stored_key_count)."""
        ...

    async def enc_keys(self, number: int) -> list[tuple[str, bytes]]:
        """Take ``number`` keys (Get key): their key_IDs and material; the other end gets
        them by key_ID. DeviceError if fewer are ready."""
        ...

    async def dec_keys(self, key_ids: Sequence[str]) -> list[tuple[str, bytes]]:
        """The keys the other end took under ``key_ids`` (Get key with key IDs), each once,
        all or none: DeviceError naming a key_ID not held for this end."""
        ...


class DevicePair:
    """An emulated device pair of KM-link ``km_link`` between nodes ``ends``: what its
    ends take (:meth:`_take`, by whichever end asks first) is held for the other end until
    it asks for it by key_ID (:meth:`_release`), each once. Subclasses make the key."""

    def __init__(self, km_link: str, ends: tuple[str, str]) -> None:
        self.km_link = km_link
        self.ends = ends
        self._held: dict[str, tuple[str, bytes]] = {}  # key_ID -> (for which end, material)

    @property
    def key_bytes(self) -> int:
        """Size of each key (bytes)."""
        raise NotImplementedError

    def end(self, node: str) -> EmulatedDeviceEnd:
        """The end of the device at ``node``."""
        if node not in self.ends:
            raise DeviceError(f"node {node} is not an end of KM-link {self.km_link}")
        return EmulatedDeviceEnd(self, node)

    def _available(self) -> int:
        """Keys ready now."""
        raise NotImplementedError

    def _make(self, number: int) -> list[bytes]:
        """``number`` keys' material, made or taken from what is ready; DeviceError if
        fewer are ready."""
        raise NotImplementedError

    def _take(self, node: str, number: int) -> list[tuple[str, bytes]]:
        other = self.ends[1] if node == self.ends[0] else self.ends[0]
        keys = [(new_key_id(), material) for material in self._make(number)]
        for key_id, material in keys:
            self._held[key_id] = (other, material)
        return keys

    def _release(self, node: str, key_ids: Sequence[str]) -> list[tuple[str, bytes]]:
        for key_id in key_ids:
            entry = self._held.get(key_id)
            if entry is None or entry[0] != node or list(key_ids).count(key_id) > 1:
                raise DeviceError(f"KM-link {self.km_link}: key_ID {key_id} is not held "
                                  f"for node {node}")
        return [(key_id, self._held.pop(key_id)[1]) for key_id in key_ids]


class EmulatedDevice(DevicePair):
    """The device pair of KM-link ``km_link`` between nodes ``ends``, making key with
    ``emulator`` on the clock ``now`` (s), keeping at most ``buffer_keys`` keys untaken."""

    def __init__(self, km_link: str, ends: tuple[str, str], emulator: KeyEmulator,
                 now: Callable[[], float], buffer_keys: int = 256) -> None:
        super().__init__(km_link, ends)
        self._emulator = emulator
        self._now = now
        self._buffer: deque[bytes] = deque()
        self._buffer_keys = buffer_keys
        #: Key (bits) the device discarded because its buffer was full.
        self.discarded_bits = 0

    @property
    def key_bytes(self) -> int:
        return self._emulator.block_bytes

    def set_rate(self, rate_bps: float) -> None:
        """The link's key rate from now on (bit/s, before the emulator's speedup)."""
        self._fill()
        self._emulator.set_rate(rate_bps, self._now())

    def _fill(self) -> None:
        now = self._now()
        room = self._buffer_keys - len(self._buffer)
        made = self._emulator.blocks(now, most=max(room, 0))
        self._buffer.extend(block.material for block in made)
        gone = self._emulator.skip(now)  # beyond the buffer: never made into key
        self.discarded_bits += gone * self._emulator.block_bits

    def _available(self) -> int:
        self._fill()
        return len(self._buffer)

    def _make(self, number: int) -> list[bytes]:
        self._fill()
        if number < 1 or number > len(self._buffer):
            raise DeviceError(f"KM-link {self.km_link}: {number} keys asked for, "
                              f"{len(self._buffer)} ready")
        return [self._buffer.popleft() for _ in range(number)]


class EmulatedDeviceEnd:
    """The end of a :class:`DevicePair` at one node (a :class:`DeviceEnd`)."""

    def __init__(self, device: DevicePair, node: str) -> None:
        self._device = device
        self.node = node

    @property
    def key_bytes(self) -> int:
        return self._device.key_bytes

    async def available(self) -> int:
        return self._device._available()

    async def enc_keys(self, number: int) -> list[tuple[str, bytes]]:
        return self._device._take(self.node, number)

    async def dec_keys(self, key_ids: Sequence[str]) -> list[tuple[str, bytes]]:
        return self._device._release(self.node, key_ids)
