"""The satellite as the QKD device of each satellite KM-link, for a deployment's node
processes: the devices service (``qkdnet qkd-devices``) flies the satellites
(:class:`~qkdnet.live.satellite_supply.SatelliteSupply`, with no stores of its own) and
serves each satellite KM-link ``sat:x~y`` as a device pair over ETSI GS QKD 014, as it
serves the emulated pairs of fibre KM-links (:mod:`qkdnet.live.device_app`).

The end that takes keys (Get key: end ``a``'s KM, which then tells end ``b`` their key_IDs
over KM-to-KM) has the satellite relay that much key: both pools of the satellite with x
and y pay it (:meth:`~qkdnet.live.satellite_supply.SatelliteSupply.spend`), and the keys
are held for the other end, which takes them by key_ID. So the stations' KMs get key only
as the passes put it in the pools, and every satellite KM-link through a station draws on
the same pool. Get status tells the keys the pools can relay now: the KMs report it to the
controller, which prices the satellite KM-link by it
(:func:`~qkdnet.control.cost.satellite_cost`).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

from qkdnet.errors import NotEnoughKey
from qkdnet.keys.pool import UNIT_BITS
from qkdnet.live.qkd_device import DeviceError, DevicePair
from qkdnet.live.satellite_supply import SatelliteSupply

#: Most keys Get status offers at once (what one exchange of the border supply takes).
READY_KEYS = 256


class SatelliteDevice(DevicePair):
    """Satellite KM-link ``km_link`` of ``supply`` as a device pair handing out keys of
    ``key_bytes`` (a whole number of pool units) on the loop clock ``now`` (s)."""

    def __init__(self, supply: SatelliteSupply, km_link: str, now: Callable[[], float],
                 key_bytes: int) -> None:
        if key_bytes * 8 % UNIT_BITS:
            raise ValueError(f"key_bytes {key_bytes}: not a whole number of pool units")
        super().__init__(km_link, supply.pools.ends[km_link])
        self._supply = supply
        self._now = now
        self._key_bytes = key_bytes

    @property
    def key_bytes(self) -> int:
        return self._key_bytes

    def _available(self) -> int:
        relayable = self._supply.pools.relayable(self.km_link)
        return min(int(relayable // (self._key_bytes * 8)), READY_KEYS)

    def _make(self, number: int) -> list[bytes]:
        if number < 1:
            raise DeviceError(f"KM-link {self.km_link}: {number} keys asked for")
        units = number * self._key_bytes * 8 // UNIT_BITS
        try:
            # the satellite relays the keys: both pools pay before any leaves
            self._supply.spend(self.km_link, self.ends[0], units, self._now())
        except NotEnoughKey as exc:
            raise DeviceError(str(exc)) from None
        # emulated: the satellite's one-time-pad relay hands both ends the same fresh key
        return [secrets.token_bytes(self._key_bytes) for _ in range(number)]


def satellite_devices(supply: SatelliteSupply, now: Callable[[], float], key_bytes: int
                      ) -> dict[str, SatelliteDevice]:
    """A device pair for each satellite KM-link ``supply``'s pools serve."""
    return {k: SatelliteDevice(supply, k, now, key_bytes) for k in supply.pools.km_links}
