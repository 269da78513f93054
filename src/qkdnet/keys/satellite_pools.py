"""The satellites' key pools, as amounts of key: each satellite shares a pool with each
ground station, filled pass by pass, and a satellite KM-link between two ground stations
relays key through the satellite as a trusted relay.

A pass over station x leaves ``key_bits`` shared between the satellite S and x (one
finite-key block, :class:`~qkdnet.quantum.satellite_pass.SatellitePass`): pool (S, x)
grows by it, up to ``capacity_bits``; what does not fit is discarded. Relaying ``k`` bits
over the KM-link ``sat:x~y`` is one trusted-relay hop through S with a one-time pad on each
side: x pads the key with ``k`` bits of pool (S, x), S unpads it and pads it again with
``k`` bits of pool (S, y) for y. So relaying k bits spends k of each of the two pools, and
key flows between stations that were never seen in the same pass (S carries it in orbit).
With several satellites the relay goes through the one whose two pools hold most (the
larger of the smaller pools), so the KM-link can carry ``max_S min(pool(S, x), pool(S, y))``.

The satellite relays a request whole (it unpads and pads again in one step), so unlike a
fibre KM-link's pool a satellite pool is not split into two directions: the satellite
hands out each bit once, whichever way the key goes. The accounting proves no bit is lost,
pool by pool: made = used + pooled + discarded.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from qkdnet.errors import NotEnoughKey, PadMismatch, ParameterError
from qkdnet.keys.pool import UNIT_BITS, UnitRange
from qkdnet.topology.model import KMLink, KMLinkKind

FloatArray = npt.NDArray[np.float64]


class SatellitePools:
    """Pools of ``satellites`` (rows) with ``stations`` (columns; node ids), each holding
    at most ``capacity_bits``; empty at start. ``km_links`` are the satellite KM-links
    they serve (others are ignored)."""

    def __init__(self, satellites: Sequence[str], stations: Sequence[str],
                 km_links: Sequence[KMLink], capacity_bits: float) -> None:
        if not capacity_bits > 0:
            raise ParameterError("capacity_bits", capacity_bits, "> 0 bits")
        self.capacity_bits = float(capacity_bits)
        self.satellites = tuple(satellites)
        self.stations = tuple(stations)
        self._sat = {s: i for i, s in enumerate(self.satellites)}
        self._station = {s: i for i, s in enumerate(self.stations)}
        self.km_links = tuple(k.id for k in km_links if k.kind is KMLinkKind.SATELLITE
                              and k.a in self._station and k.b in self._station)
        self.ends = {k.id: (k.a, k.b) for k in km_links if k.id in set(self.km_links)}
        shape = (len(self.satellites), len(self.stations))
        self.pooled = np.zeros(shape)
        self.made = np.zeros(shape)
        self.used = np.zeros(shape)
        self.discarded = np.zeros(shape)
        #: Key relayed over each satellite KM-link (bits, pads only: in ``km_links`` order).
        self.relayed = np.zeros(len(self.km_links))
        self._km_row = {k: i for i, k in enumerate(self.km_links)}
        # relays named by a sender and not yet taken by the receiver:
        # (km_link, satellite row, first unit) -> (receiver, units)
        self._in_flight: dict[tuple[str, int, int], tuple[str, int]] = {}
        self._named = 0

    def serves(self, km_link: str) -> bool:
        """Whether ``km_link`` is one of these pools' satellite KM-links."""
        return km_link in self.ends

    def fill(self, satellite: str, station: str, bits: float) -> float:
        """A pass of ``satellite`` over ``station`` left ``bits`` shared: add what fits
        (bits kept returned), discard the rest."""
        if not bits >= 0:
            raise ParameterError("bits", bits, ">= 0")
        s, x = self._cell(satellite, station)
        kept = min(bits, self.capacity_bits - self.pooled[s, x])
        self.made[s, x] += bits
        self.discarded[s, x] += bits - kept
        self.pooled[s, x] += kept
        return float(kept)

    def relayable(self, km_link: str) -> float:
        """Key (bits) ``km_link`` can relay now: through the best satellite, the smaller of
        its two pools."""
        a, b = self._columns(km_link)
        return float(np.minimum(self.pooled[:, a], self.pooled[:, b]).max(initial=0.0))

    def relayable_all(self) -> FloatArray:
        """:meth:`relayable` for every KM-link (in ``km_links`` order)."""
        return np.array([self.relayable(k) for k in self.km_links])

    def send(self, km_link: str, sender: str, units: int) -> tuple[UnitRange, ...]:
        """Relay ``units`` of key from ``sender`` over ``km_link`` through the satellite
        whose pools hold most: both its pools pay the units. The range names the
        satellite (as the block) for the receiver; NotEnoughKey (nothing changed) when no
        satellite holds that much with both stations."""
        a, b = self._columns(km_link)
        ends = self.ends[km_link]
        if sender not in ends:
            raise NotEnoughKey(f"KM-link {km_link!r} has no pool at {sender}")
        bits = units * UNIT_BITS
        both = np.minimum(self.pooled[:, a], self.pooled[:, b])
        if both.size == 0 or both.max() < bits:
            raise NotEnoughKey(f"satellite KM-link {km_link!r} holds "
                               f"{int(both.max(initial=0.0))} bits; {bits} asked")
        s = int(both.argmax())
        for column in (a, b):
            self.pooled[s, column] -= bits
            self.used[s, column] += bits
        self.relayed[self._km_row[km_link]] += bits
        start = self._named
        self._named += units
        receiver = ends[1] if sender == ends[0] else ends[0]
        self._in_flight[(km_link, s, start)] = (receiver, units)
        return (UnitRange(s, start, units),)

    def receive(self, km_link: str, receiver: str, ranges: tuple[UnitRange, ...]) -> None:
        """The receiver takes the units its sender named (already paid at the satellite);
        PadMismatch if they were not named for it, or were taken before."""
        for r in ranges:
            found = self._in_flight.get((km_link, r.block, r.start))
            if found != (receiver, r.count):
                raise PadMismatch(f"satellite KM-link {km_link!r}: units {r.start}+{r.count} "
                                  f"not named for {receiver}")
        for r in ranges:
            del self._in_flight[(km_link, r.block, r.start)]

    def imbalance(self) -> FloatArray:
        """made - used - pooled - discarded per pool (bits): zero up to rounding."""
        imbalance: FloatArray = self.made - self.used - self.pooled - self.discarded
        return imbalance

    def _cell(self, satellite: str, station: str) -> tuple[int, int]:
        if satellite not in self._sat:
            raise ParameterError("satellite", satellite, "one of " + ", ".join(self.satellites))
        if station not in self._station:
            raise ParameterError("station", station, "a ground station")
        return self._sat[satellite], self._station[station]

    def _columns(self, km_link: str) -> tuple[int, int]:
        ends = self.ends.get(km_link)
        if ends is None:
            raise NotEnoughKey(f"{km_link!r} is not a satellite KM-link of these pools")
        return self._station[ends[0]], self._station[ends[1]]
