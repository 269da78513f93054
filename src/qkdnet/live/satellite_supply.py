"""The satellite segment of the live network: the satellites' passes over the ground
stations emulated on the event loop's clock, and the key of the satellite KM-links.

The satellite clock runs from ``start`` (a UTC instant; by default 20:00 China Standard
Time on the built-in TLE's epoch day, so night passes come soon) at ``speedup`` times the
wall clock: a pass at 2,460 s on it happens 2,460 / speedup s after the server started.
Passes come from the orbit model (:func:`qkdnet.quantum.passes.find_passes`, as the twin's
:func:`qkdnet.twin.satellite_passes.scenario_passes`), found a satellite-clock day at a
time. During a pass the pool the satellite shares with the station fills at an even rate,
its finite-key block (``key_bits``) spread over rise to set; the pools are the twin's
sans-I/O accounting (:class:`~qkdnet.keys.satellite_pools.SatellitePools`). A pass over a
station under ``clouded`` yields nothing (an outage the operator forces, for tests and
demonstrations of the ``satellite-pass-no-key`` alarm).

A satellite KM-link ``sat:x~y`` takes key when both its pools hold some: the satellite, as
trusted relay, makes a pad shared by x and y (emulated: random blocks deposited at both
ends' stores of the KM-link, as the supply pump does for a fibre KM-link) and spends that
much of both pools (:meth:`SatellitePools.send` and ``receive``). Each direction of the
KM-link's stores is kept topped up to ``pad_bytes``, no more: the rest stays in the
satellite's pools, shared by every KM-link through that station. The KMs then relay over
it as over any KM-link; the control layer prices it by what it can carry (the stores' pad
plus what its pools can still relay: :func:`qkdnet.control.cost.satellite_cost`).

With a state file (:class:`~qkdnet.live.satellite_state.SatelliteState`) the pools and the
satellite clock are kept across restarts: the clock resumes where it stopped and the pools
hold what they held; without one they live in this process only (pads already in the
stores are kept either way). ``prefill_bits`` starts every pool of a new segment with key,
so no one waits for a pass.

In the distributed deployment no KM-link's stores are here (``stores`` empty): the devices
service flies the satellites and hands each satellite KM-link's key to its two ends over
ETSI GS QKD 014 (:mod:`qkdnet.live.satellite_device`), taking it with :meth:`spend`.

At a high ``speedup`` the satellite clock may run days ahead in one step: one step finds
the passes of at most :data:`MAX_WINDOWS_PER_STEP` days (the clock then lags and catches up
in later steps), so a step never stalls the event loop for long.
"""

from __future__ import annotations

import contextlib
import logging
import math
import secrets
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from qkdnet.errors import KeyStoreError, ParameterError
from qkdnet.keys.link_state import KMLinkState
from qkdnet.keys.pool import UNIT_BITS, Deposit
from qkdnet.keys.satellite_pools import SatellitePools
from qkdnet.keys.store import SQLiteKeyStore
from qkdnet.keys.supply import outbound_at_a
from qkdnet.live.satellite_state import SatelliteState
from qkdnet.management.satellite import Cell, PassOutcome
from qkdnet.quantum.orbit import GroundStation, Orbit
from qkdnet.quantum.passes import find_passes
from qkdnet.quantum.satellite_pass import SatellitePass
from qkdnet.topology.model import KMLinkKind, Network, NodeKind
from qkdnet.twin.satellite_passes import (
    JINAN_1,
    SPACING_S,
    TWIN_EPOCH,
    TWIN_RULES,
    TwinSatellite,
    orbit_of,
)

log = logging.getLogger("qkdnet.keys")

#: Where the satellite clock starts by default: 12:00 UTC (20:00 China Standard Time) on
#: the built-in TLE's epoch day; the first night pass over cn-qcn is ~41 min later.
DEFAULT_START = TWIN_EPOCH + timedelta(hours=12)
#: Satellite-clock time found per search for passes (s), and how far each search reaches
#: past it so that a pass under way at its end is found whole (a pass lasts < 15 min).
WINDOW_S = 86400.0
OVERLAP_S = 3600.0
#: A pad block the satellite makes for a KM-link (bytes: 32 units of 256 bits).
BLOCK_BYTES = 1024
#: Pad each direction of a satellite KM-link's stores is kept topped up to (bytes).
DEFAULT_PAD_BYTES = 16 * BLOCK_BYTES
#: Most days of passes one step searches (a search of a day takes some tens of ms).
MAX_WINDOWS_PER_STEP = 2
#: How often the state file is written when nothing was spent (s of the loop's clock).
SAVE_INTERVAL_S = 1.0


@dataclass(frozen=True)
class SatelliteSettings:
    """How the satellite segment is flown: key each pool of a new segment starts with and
    the most a pool holds (bits), the UTC instant the satellite clock starts at, and the
    ground stations whose passes yield nothing (forced clouds). ParameterError names the
    option of a bad value."""

    prefill_bits: float = 0.0
    pool_bits: float = 1e7
    start: datetime = DEFAULT_START
    clouded: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not 0 <= self.prefill_bits < math.inf:
            raise ParameterError("--satellite-prefill-bits", self.prefill_bits, "bits, >= 0")
        if not 0 < self.pool_bits < math.inf:
            raise ParameterError("--satellite-pool-bits", self.pool_bits, "bits, > 0")
        if self.start.tzinfo is None:
            raise ParameterError("--satellite-start", self.start.isoformat(),
                                 "a UTC time (with its offset, e.g. 2025-01-01T12:00Z)")


@dataclass
class _Pass:
    scheduled: SatellitePass
    made: float = 0.0  # bits of its key filled so far (0 for a clouded pass)
    until: float = 0.0  # satellite-clock time (s) it has filled up to


def satellites_of(network: Network) -> tuple[TwinSatellite, ...]:
    """The satellites of a served network: Jinan-1 (the built-in orbit) where it has
    satellite KM-links, none otherwise."""
    if any(k.kind is KMLinkKind.SATELLITE for k in network.km_links):
        return (TwinSatellite(JINAN_1),)
    return ()


def check_clouded(network: Network, clouded: Collection[str]) -> None:
    """ParameterError naming ``--satellite-cloud`` for a station that is not a ground
    station of the network."""
    stations = {n.id for n in network.nodes_of(NodeKind.GROUND_STATION)}
    for station in clouded:
        if station not in stations:
            raise ParameterError("--satellite-cloud", station, "a ground station: "
                                 + (", ".join(sorted(stations)) or "the network has none"))


class SatelliteSupply:
    """Passes of ``satellites`` over the ground stations of ``network``, filling their
    pools (``capacity_bits`` each) and the ``stores`` (by node) of the satellite KM-links
    whose two ends are here."""

    def __init__(self, network: Network, stores: Mapping[str, SQLiteKeyStore],
                 satellites: Sequence[TwinSatellite], capacity_bits: float,
                 start: datetime = DEFAULT_START, speedup: float = 1.0,
                 clouded: Collection[str] = (), pad_bytes: int = DEFAULT_PAD_BYTES,
                 state: SatelliteState | None = None) -> None:
        self.stores = stores
        self.state = state
        self._saved = -math.inf  # loop time of the last save
        self._reached = 0.0  # satellite-clock time the passes have been advanced to (s)
        self.start_utc = start.astimezone(UTC)
        self.speedup = speedup
        self.pad_bytes = pad_bytes
        stations = network.nodes_of(NodeKind.GROUND_STATION)
        self._grounds = [GroundStation(n.id, n.lat, n.lon) for n in stations]
        self.pools = SatellitePools([s.id for s in satellites], [n.id for n in stations],
                                    network.km_links, capacity_bits)
        self.km_links = [k for k in network.km_links if self.pools.serves(k.id)
                         and k.a in stores and k.b in stores]
        #: Ground stations whose passes yield nothing (forced: clouds, an outage).
        self.clouded = set(clouded)
        self._orbits = self._orbits_of(satellites)
        self._passes: list[_Pass] = []  # found, not yet ended, by rise
        self._searched = 0.0  # satellite-clock time passes are known up to (s)
        self._ended: list[PassOutcome] = []
        self._t0 = 0.0
        #: Pad bits lost to a store fault (spent from the pools, reached one end at most).
        self.lost_bits = 0

    @staticmethod
    def _orbits_of(satellites: Sequence[TwinSatellite]) -> list[Orbit]:
        """As the twin flies them: those without a TLE spaced along the built-in orbit."""
        orbits, shared = [], 0
        for sat in satellites:
            orbit = orbit_of(sat)
            if sat.tle is None:
                orbit, shared = orbit.trailing(shared * SPACING_S, sat.id), shared + 1
            orbits.append(orbit)
        return orbits

    def start(self, now: float, prefill_bits: float = 0.0) -> None:
        """The satellite clock starts at loop time ``now`` (s), or resumes there where the
        state file left it; every pool of a new segment starts with ``prefill_bits``. After
        a restart the KM-links resume past the highest block either end holds; a block
        only one end received is discarded (as the supply pump does)."""
        self._t0 = now
        for km in self.km_links:
            ends = (self.stores[km.a], self.stores[km.b])
            resume = [store.next_block(km.id) for store in ends]
            if resume[0] != resume[1]:
                ends[resume.index(max(resume))].discard_from(km.id, min(resume))
        resumed = None if self.state is None else self.state.resume(self.pools)
        if resumed is not None:
            self._resume(now, resumed)
        elif prefill_bits > 0:
            for sat in self.pools.satellites:
                for station in self.pools.stations:
                    self.pools.fill(sat, station, prefill_bits)
        self._save(now)

    def _resume(self, now: float, clock: float) -> None:
        """Go on from satellite-clock time ``clock`` (s) at loop time ``now``: a pass under
        way then has made its share of key so far (already in the pools)."""
        self._t0 = now - clock / self.speedup
        self._reached = clock
        # the windows the first run searched (the same passes, to the bit); a pass lasts
        # < OVERLAP_S, so one under way at `clock` rose in its window or the one before
        window = math.floor(clock / WINDOW_S) * WINDOW_S
        self._searched = max(window - WINDOW_S, 0.0) if clock - window < OVERLAP_S else window
        while self._searched <= clock:
            self._search(self._searched)
        still = []
        for p in self._passes:
            s = p.scheduled
            if s.set_s <= clock:
                continue  # ended before the stop
            if s.rise_s < clock:
                p.until = clock
                if s.station not in self.clouded:
                    p.made = s.key_bits * (clock - s.rise_s) / max(s.duration_s, 1e-9)
            still.append(p)
        self._passes = still

    def _save(self, now: float) -> None:
        if self.state is not None:
            self.state.save(self._reached, self.pools)
            self._saved = now

    def close(self) -> None:
        """Close the state file (the clock and pools as they are now were saved by the
        last step)."""
        if self.state is not None:
            self.state.close()

    def spend(self, km_link: str, sender: str, units: int, now: float) -> None:
        """Relay ``units`` of key over ``km_link`` from ``sender`` through the satellite at
        loop time ``now``: both pools pay, and the state file keeps it before the caller
        hands the key out. NotEnoughKey (nothing changed) if the pools hold too little."""
        self._advance(self.clock_s(now))
        ranges = self.pools.send(km_link, sender, units)
        a, b = self.pools.ends[km_link]
        self.pools.receive(km_link, b if sender == a else a, ranges)
        self._save(now)

    @property
    def reached_s(self) -> float:
        """Satellite-clock time the passes have been advanced to (s): behind
        :meth:`clock_s` while the search for passes catches up."""
        return self._reached

    def clock_s(self, now: float) -> float:
        """The satellite clock at loop time ``now`` (s from :attr:`start_utc`)."""
        return (now - self._t0) * self.speedup

    def pump(self, now: float) -> int:
        """Advance the passes to loop time ``now`` (s) and top up the satellite KM-links'
        pads; how many blocks were deposited at both ends."""
        self._advance(self.clock_s(now))
        done = self._top_up(now)
        if now - self._saved >= SAVE_INTERVAL_S:
            self._save(now)
        return done

    def _advance(self, clock: float) -> None:
        for _ in range(MAX_WINDOWS_PER_STEP):
            if self._searched > clock:
                break
            self._search(self._searched)
        clock = min(clock, self._searched)  # lagging: the rest in the next steps
        self._reached = max(self._reached, clock)
        still: list[_Pass] = []
        for p in self._passes:
            s = p.scheduled
            if s.rise_s >= clock:
                still.append(p)
                continue
            upto = min(clock, s.set_s)
            if s.station not in self.clouded and s.key_bits > 0 and upto > p.until:
                share = s.key_bits * (upto - max(p.until, s.rise_s)) / max(s.duration_s, 1e-9)
                share = min(share, s.key_bits - p.made)
                self.pools.fill(s.satellite, s.station, share)
                p.made += share
            p.until = max(p.until, upto)
            if s.set_s <= clock:
                self._ended.append(PassOutcome(s, p.made, math.nan))
            else:
                still.append(p)
        self._passes = still

    def _search(self, begin: float) -> None:
        """Find the passes rising in [begin, begin + WINDOW_S) (satellite clock, s)."""
        epoch = self.start_utc + timedelta(seconds=begin)
        known = {(p.scheduled.satellite, p.scheduled.station): p.scheduled.set_s
                 for p in self._passes}
        for orbit in self._orbits:
            for p in find_passes(orbit, self._grounds, epoch, WINDOW_S + OVERLAP_S,
                                 TWIN_RULES):
                moved = replace(p, rise_s=p.rise_s + begin, culmination_s=p.culmination_s
                                + begin, set_s=p.set_s + begin)
                if moved.rise_s >= begin + WINDOW_S:
                    continue  # the next window finds it whole
                if known.get((moved.satellite, moved.station), -math.inf) > moved.rise_s:
                    continue  # the previous window's pass, cut at this window's start
                self._passes.append(_Pass(moved, until=moved.rise_s))
        self._passes.sort(key=lambda p: p.scheduled.rise_s)
        self._searched = begin + WINDOW_S

    def take_ended(self, t: float) -> list[PassOutcome]:
        """The passes that ended since the last call, stamped with NMS time ``t`` (s)."""
        ended, self._ended = self._ended, []
        return [replace(o, t=t) for o in ended]

    def in_progress(self, now: float) -> list[SatellitePass]:
        """The passes under way at loop time ``now``."""
        clock = self.clock_s(now)
        return [p.scheduled for p in self._passes if p.scheduled.rise_s <= clock]

    def upcoming(self, now: float, count: int = 10, within_s: float = 2 * WINDOW_S
                 ) -> list[SatellitePass]:
        """The next ``count`` passes not yet risen at loop time ``now``, rising within
        ``within_s`` (s of the satellite clock)."""
        clock = self.clock_s(now)
        for _ in range(MAX_WINDOWS_PER_STEP):
            if self._searched > clock + within_s:
                break
            self._search(self._searched)
        return [p.scheduled for p in self._passes if p.scheduled.rise_s > clock][:count]

    def pool_levels(self) -> dict[Cell, float]:
        """Key in each (satellite, station) pool (bits)."""
        return {(sat, x): float(self.pools.pooled[i, j])
                for i, sat in enumerate(self.pools.satellites)
                for j, x in enumerate(self.pools.stations)}

    def link_states(self) -> list[KMLinkState]:
        """What the KMs report of each satellite KM-link here: the pad in its tighter
        direction plus what its pools can still relay (bits), no steady refill, up."""
        states = []
        for km in self.km_links:
            try:
                pad = 8.0 * min(self.stores[km.a].pool_bytes(km.id, True),
                                self.stores[km.b].pool_bytes(km.id, True))
            except KeyStoreError:
                pad = 0.0  # a store that cannot be read has no key to offer
            states.append(KMLinkState(km.id, pad + self.pools.relayable(km.id), 0.0, True))
        return states

    def _top_up(self, now: float) -> int:
        done = 0
        block_bits = BLOCK_BYTES * 8
        for km in self.km_links:
            a, b = self.stores[km.a], self.stores[km.b]
            deposits: list[tuple[Deposit, Deposit]] = []
            if a.write_fault is not None or b.write_fault is not None:
                continue  # the supply pump retries a faulty store; pads wait until then
            if self.pools.relayable(km.id) < block_bits:
                continue  # nothing to make a pad of (most of the time: between passes)
            try:
                # outbound bytes at a (True) and at b (False), and the room each direction
                # (True: outbound at a, inbound at b) has at both ends
                held = {True: a.pool_bytes(km.id, True), False: b.pool_bytes(km.id, True)}
                if min(held.values()) >= self.pad_bytes:
                    continue  # both directions hold their pad: the usual case, no query
                room = {out: min(a.room(km.id, out), b.room(km.id, not out))
                        for out in (True, False)}
                block = max(a.next_block(km.id), b.next_block(km.id))
                while self.pools.relayable(km.id) >= block_bits:
                    out = outbound_at_a(block, held[True], held[False])
                    if held[out] >= self.pad_bytes or room[out] < BLOCK_BYTES:
                        break  # the emptier direction holds its pad, or has no room
                    room[out] -= BLOCK_BYTES
                    ranges = self.pools.send(km.id, km.a, BLOCK_BYTES * 8 // UNIT_BITS)
                    self.pools.receive(km.id, km.b, ranges)
                    pad = secrets.token_bytes(BLOCK_BYTES)
                    deposits.append((Deposit(km.id, block, pad, out),
                                     Deposit(km.id, block, pad, not out)))
                    held[out] += BLOCK_BYTES
                    block += 1
                if not deposits:
                    continue
                self._save(now)  # the pools paid before the pads exist: never relayed twice
                a.deposit_many(d for d, _ in deposits)
            except KeyStoreError as exc:
                self.lost_bits += len(deposits) * block_bits
                log.warning("satellite KM-link %s: pads lost, store at %s: %s", km.id, km.a,
                            exc)
                continue
            try:
                b.deposit_many(d for _, d in deposits)
            except KeyStoreError as exc:
                # a's blocks have no twin at b: discard them, never use them
                self.lost_bits += len(deposits) * block_bits
                log.warning("satellite KM-link %s: pads lost, store at %s: %s", km.id, km.b,
                            exc)
                # else discarded at the next start (the ends' next blocks differ)
                with contextlib.suppress(KeyStoreError):
                    a.discard_from(km.id, deposits[0][0].block)
                continue
            done += len(deposits)
        return done
