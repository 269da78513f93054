"""The twin driver: the whole network over weeks of simulated time.

Two clocks of a kind, both simulated:

- vectorised steps (``step_s``, 5 min by default): every QKD-link's key rate from the
  quantum layer (:class:`~qkdnet.quantum.rate_table.RateTable`) under the day-night drift and
  vibration bursts (:mod:`qkdnet.quantum.dynamics`), cut by the part of each step it is down;
  the key made goes into the KM-link pools (:class:`~qkdnet.keys.amount_store.AmountPools`,
  amounts of key with the key stores' verbs), a day of steps at a time;
- relays, hourly (and sooner for a demand that has asked for nearly what a pool
  direction holds): each demand's keys asked for since its last relay travel its route as
  one relay through the nodes' :class:`~qkdnet.keys.manager.KeyManager` (the live
  network's relay rules, over amounts of key instead of material), as many keys as the
  route's tightest hop can pay for;
- satellite passes, at the end of each pass: its key fills the pool the satellite shares
  with the ground station (:class:`~qkdnet.keys.satellite_pools.SatellitePools`); the
  satellite KM-links relay through those pools as any KM-link does, and their KMs report
  the key they hold to the control layer at the next hourly report;
- events, exact in time: a fault starting or ending is reported to the control layer's
  :class:`~qkdnet.control.controller.Controller` (the code a live network runs),
  which switches demands to their backup, reroutes them or finds no route. Whether each
  service can be served is therefore known to the second, not to the step. Once an hour the
  KMs also report the KM-links whose pools ran dry or recovered.

The run is a pure function of the scenario (seeded); :func:`run_twin` returns a
:class:`TwinResult` that the report renders.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt

from qkdnet.control.controller import Controller, Demand, RouteChanged
from qkdnet.files.recording import Recording
from qkdnet.keys.amount_store import AmountPools
from qkdnet.keys.in_memory import InMemoryKMs
from qkdnet.keys.link_state import KMLinkState
from qkdnet.keys.messages import KeyDelivered, KeyRequest
from qkdnet.keys.pool import UNIT_BITS
from qkdnet.keys.relay_cost import key_units, relayable_keys
from qkdnet.keys.relay_crypto import KeyAmounts
from qkdnet.keys.route import Route
from qkdnet.keys.satellite_pools import SatellitePools
from qkdnet.management.alarms import Alarm
from qkdnet.management.availability import Interval, Outages, outages
from qkdnet.quantum.dynamics import LinkDynamics
from qkdnet.quantum.rate_table import RateTable, intrinsic_qber
from qkdnet.quantum.satellite_pass import SatellitePass
from qkdnet.topology.model import KMLinkKind, NodeKind
from qkdnet.topology.paths import path_links, shortest_path
from qkdnet.twin.faults import Fault, FaultModel, draw_faults, scripted_fault
from qkdnet.twin.km_supply import KMSupply
from qkdnet.twin.monitoring import TwinMonitor
from qkdnet.twin.scenario import TwinDemand, TwinScenario
from qkdnet.units import DAY_S, HOUR_S, WEEK_S

FloatArray = npt.NDArray[np.float64]
IndexArray = npt.NDArray[np.intp]
F32Array = npt.NDArray[np.float32]

#: How often KMs report pools that ran dry or recovered, and demands relay the key they
#: asked for since the last time (s of simulated time).
REPORT_S = HOUR_S
#: A pool below this many bits counts as dry in those reports.
DRY_BITS = 4096.0
#: Key asked per relay request by a watched segment service (bits).
SEGMENT_NEED_BITS = 256

Progress = Callable[[float, float], None]
#: Added to the seed for the random faults of a what-if's added QKD-links (their own
#: stream; the dynamics take seed + 1).
ADDED_LINKS_SEED_OFFSET = 2**32


@dataclass(frozen=True)
class ServiceResult:
    """One demand over the run: when it had no usable route, and how much key it got."""

    demand: TwinDemand
    outages: Outages
    requested_bits: float
    served_bits: float
    route_changes: tuple[tuple[float, str], ...]
    hops: int
    relays: int = 0  # relays of its key delivered (each hop pays one MAC key per relay)
    satellite_bits: float = 0.0  # key served over a route through a satellite (bits)

    @property
    def served_fraction(self) -> float:
        """Served / requested key (1 for a watched service that asks for none)."""
        return self.served_bits / self.requested_bits if self.requested_bits else 1.0


@dataclass(frozen=True)
class SegmentResult:
    """A stretch of the watched path between two waypoints: its QKD-links in order, the
    weekly mean of their instantaneous minimum rate (bit/s, the paper's end-to-end SKR),
    and the watched service between its ends."""

    source: str
    target: str
    links: tuple[str, ...]
    weekly_skr_bps: tuple[float, ...]
    service: ServiceResult

    @property
    def mean_skr_bps(self) -> float:
        """The run's mean end-to-end SKR (bit/s)."""
        return float(np.mean(self.weekly_skr_bps))


@dataclass(frozen=True)
class SatelliteResult:
    """The satellite segment over the run: every pass (with the key its pool kept, bits),
    the pools' accounting per satellite (rows) and ground station (columns) in bits
    (made = used + pooled + discarded), the key relayed per satellite KM-link (bits), and
    the pools sampled hourly at ``pool_times_s`` (samples, satellites, stations)."""

    satellites: tuple[str, ...]
    stations: tuple[str, ...]
    passes: tuple[SatellitePass, ...]
    kept_bits: FloatArray
    made_bits: FloatArray
    used_bits: FloatArray
    pooled_bits: FloatArray
    discarded_bits: FloatArray
    km_links: tuple[str, ...]
    relayed_bits: FloatArray
    pool_times_s: FloatArray
    pool_bits: FloatArray


@dataclass(frozen=True)
class TwinResult:
    """Everything a run measured. Per-link arrays (rates) follow ``link_ids`` (the
    QKD-links); the key accounting (made, used, pooled, discarded; bits) follows
    ``km_link_ids``, the KM-links with a pool (:mod:`qkdnet.twin.km_supply`). Pools are
    sampled hourly at ``pool_times_s``: key in all pools, the share of dry pools, and per
    demand (columns in ``services`` order) the key in the emptiest pool of its route."""

    scenario: TwinScenario
    link_ids: tuple[str, ...]
    static_bps: FloatArray
    mean_bps: FloatArray
    made_bits: FloatArray
    used_bits: FloatArray
    pooled_bits: FloatArray
    discarded_bits: FloatArray
    link_outages: dict[str, Outages]
    faults: tuple[Fault, ...]
    services: tuple[ServiceResult, ...]
    segments: tuple[SegmentResult, ...]
    pool_times_s: FloatArray
    pool_total_bits: FloatArray
    pool_dry_fraction: FloatArray
    pool_route_min_bits: FloatArray
    alarms: tuple[Alarm, ...] = ()
    index: dict[str, int] = field(default_factory=dict)
    #: Hourly link telemetry, sampled with the pools: times (s), and per sample and link
    #: (columns in ``link_ids`` order) the step's SKR (bit/s), QBER (NaN for CV links and
    #: links down all step) and whether the link was up.
    telemetry_t: FloatArray = field(default_factory=lambda: np.zeros(0))
    telemetry_skr_bps: npt.NDArray[np.float32] = field(
        default_factory=lambda: np.zeros((0, 0), dtype=np.float32))
    telemetry_qber: npt.NDArray[np.float32] = field(
        default_factory=lambda: np.zeros((0, 0), dtype=np.float32))
    telemetry_up: npt.NDArray[np.bool_] = field(
        default_factory=lambda: np.zeros((0, 0), dtype=bool))

    satellite: SatelliteResult | None = None
    #: The KM-links with a pool, in the order of the key accounting arrays.
    km_link_ids: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.index.update((lk, i) for i, lk in enumerate(self.link_ids))

    def recording(self) -> Recording:
        """What ``qkdnet console`` replays: the run's network, hourly link telemetry and
        every alarm its NMS raised."""
        return Recording(self.scenario.network, self.link_ids, self.telemetry_t,
                         self.telemetry_skr_bps.astype(float),
                         self.telemetry_qber.astype(float), self.telemetry_up, self.alarms)

    @property
    def watched_links(self) -> tuple[str, ...]:
        """The QKD-links of the whole watched path, in order."""
        return tuple(lk for s in self.segments for lk in s.links)


def run_twin(scenario: TwinScenario, progress: Progress | None = None, *,
             alarms: bool = True) -> TwinResult:
    """Run ``scenario``; ``progress(done_s, total_s)`` is called after each simulated day.
    ``alarms`` False runs no NMS: nothing in the run reads its alarms (they are only
    reported), so every figure but :attr:`TwinResult.alarms` (then empty) is the same, for
    about a third less CPU on cn-qcn (what a sweep, which reads no alarms, runs)."""
    return _Run(scenario, alarms).run(progress)


@dataclass
class _Steps:
    """A day of steps: start ``times`` (s), ``widths`` (s; the last step of a run may be
    short), and per step and link the rate (bit/s), QBER and share of the step it was up."""

    times: FloatArray
    widths: FloatArray
    rates: FloatArray
    qber: FloatArray
    up_share: FloatArray
    km_bits: FloatArray  # per step and fed KM-link: the key its QKD-links made (bits)


@dataclass
class _DemandState:
    """What the run keeps per demand: key asked for, served, and asked since the last
    relay (bits); its route now (and its KM-links' pool columns); when its outage
    began."""

    demand: TwinDemand
    requested: float = 0.0
    served: float = 0.0
    unrelayed: float = 0.0
    route: Route | None = None
    columns: IndexArray = field(default_factory=lambda: np.zeros(0, dtype=np.intp))
    down_since: float | None = None
    outages: list[Interval] = field(default_factory=list)
    changes: list[tuple[float, str]] = field(default_factory=list)
    relays: int = 0
    delivered_relays: int = 0
    satellite_rows: list[int] = field(default_factory=list)
    satellite_bits: float = 0.0


class _Run:
    """One run of a scenario: the network's rates, faults, pools, Key Managers and
    controller, stepped through simulated time."""

    def __init__(self, scenario: TwinScenario, alarms: bool = True) -> None:
        self.scenario = scenario
        net = scenario.network
        self.links = net.qkd_links
        self.link_ids = tuple(lk.id for lk in self.links)
        self.column = {lk.id: i for i, lk in enumerate(self.links)}
        # a pool per fed KM-link: direct ones in QKD-link order, then the remote ones
        self.supply = KMSupply.of(net)
        self.km_links = list(self.supply.km_links)
        self.km_column = {k.id: i for i, k in enumerate(self.km_links)}
        self.table = RateTable(self.links)
        self.km_static = self.supply.bits(self.table.static)
        self.dynamics = LinkDynamics(len(self.links), scenario.duration_s, scenario.seed + 1) \
            if scenario.dynamics else None
        self.faults = self._faults(scenario.fault_model)
        self.link_outages = _link_outages(self.faults)
        self.sats = self._satellite_pools()
        self.passes = sorted(scenario.passes, key=lambda p: p.set_s)
        self.next_pass = 0
        self.pass_kept: list[float] = []
        self.sat_samples: list[FloatArray] = []
        self.sat_reported = np.zeros(0 if self.sats is None else len(self.sats.km_links))
        self.pools = AmountPools(self.km_links, scenario.pool_bits, self.sats)
        #: A demand that has asked for this much since its last relay relays at once
        #: rather than at the next report, before its pools overflow: 80% of what one
        #: direction of a pool holds (room for what the links make while it relays).
        self.relay_bits = 0.4 * scenario.pool_bits
        self.stores = {n.id: self.pools.store(n.id) for n in net.nodes}
        self.kms = InMemoryKMs.over(self.stores, KeyAmounts())
        # the control layer routes over the KM-links that hold key here, remote ones too
        fed = {k.id for k in self.km_links}
        self.controller = Controller.for_network(
            replace(net, km_links=tuple(k for k in net.km_links if k.id in fed
                                        or k.kind is KMLinkKind.SATELLITE)),
            fibre=(KMLinkKind.DIRECT, KMLinkKind.REMOTE))
        # Smallest requests first, so a bulk one-time-pad line cannot starve key refreshes.
        demands = sorted(scenario.demands, key=lambda d: d.rate_bps) + [
            TwinDemand(_segment_id(a, b), a, b, 0.0, SEGMENT_NEED_BITS)
            for a, b in zip(scenario.segments, scenario.segments[1:], strict=False)]
        self.demands = {d.id: _DemandState(d) for d in demands}
        self._dry = np.ones(len(self.km_links), dtype=bool)  # pools start empty, as reported
        self.segment_columns = self._segment_columns()
        # The NMS, fed each step: a link whose whole step is down reads down, and CV links
        # report no QBER (their error figure is excess noise).
        self.monitor = TwinMonitor(net, self.link_ids) if alarms else None
        self.intrinsic_qber = intrinsic_qber(self.links)
        self.fault_events = self._fault_events()
        n, weeks = len(self.links), scenario.weeks
        self.rate_sum = np.zeros(n)
        self.segment_sum = np.zeros((len(self.segment_columns), weeks))
        self.week_s = np.zeros(weeks)
        self.samples: list[list[float]] = []
        self.telemetry: list[tuple[F32Array, F32Array, npt.NDArray[np.bool_]]] = []
        self.next_report = REPORT_S

    def _satellite_pools(self) -> SatellitePools | None:
        sc = self.scenario
        if not sc.satellites:
            return None
        stations = [n.id for n in sc.network.nodes_of(NodeKind.GROUND_STATION)]
        return SatellitePools([s.id for s in sc.satellites], stations, sc.network.km_links,
                              sc.satellite_pool_bits)

    def _faults(self, model: FaultModel) -> tuple[Fault, ...]:
        sc = self.scenario
        drawn = []
        if sc.random_faults:
            added = set(sc.added_links)
            drawn = draw_faults(sc.network, sc.duration_s, sc.seed, model,
                                [lk.id for lk in sc.network.qkd_links if lk.id not in added]
                                if added else None)
            if added:  # a stream of their own: the other links fail as without them
                drawn += draw_faults(sc.network, sc.duration_s,
                                     sc.seed + ADDED_LINKS_SEED_OFFSET, model, added)
        scripted = [scripted_fault(f.link, f.start_s, min(f.duration_s,
                                                          sc.duration_s - f.start_s))
                    for f in sc.faults]
        return tuple(sorted(drawn + scripted, key=lambda f: (f.start_s, f.link)))

    def run(self, progress: Progress | None) -> TwinResult:
        self._start()
        step = self.scenario.step_s
        steps = int(np.ceil(self.scenario.duration_s / step))
        per_day = max(1, round(DAY_S / step))
        for first in range(0, steps, per_day):
            day = self._day_of_steps(first, min(per_day, steps - first))
            self._add_to_means(day)
            for k in range(day.times.size):
                self._step(day, k)
            if progress is not None:
                progress(float(day.times[-1] + day.widths[-1]), self.scenario.duration_s)
        return self._result()

    def _start(self) -> None:
        """Every KM-link reported up (and empty), every demand routed."""
        self._report(0.0, [self._state(i, up=True) for i in range(len(self.km_links))]
                     + self._satellite_states(every=True))
        # The watched segments measure the fibre path (the paper's Table 1), so their
        # services never take a satellite KM-link; the demands may.
        satellite = frozenset(self.sats.km_links) if self.sats is not None else frozenset()
        segments = {_segment_id(a, b) for a, b in itertools.pairwise(self.scenario.segments)}
        for d in self.demands.values():
            segment = d.demand.id in segments
            demand = Demand(d.demand.id, d.demand.source, d.demand.target,
                            float(d.demand.key_bits), satellite if segment else frozenset())
            self._apply(0.0, [self.controller.add(demand)])

    def _step(self, day: _Steps, k: int) -> None:
        """One step: alarms on its telemetry, the faults that start or end in it, its key
        into the pools, the demands' asks; at each report time the relays and reports."""
        end = float(day.times[k] + day.widths[k])
        up = day.up_share[k] > 0  # a link down all step measures no SKR or QBER
        qber = np.where(up, day.qber[k], np.nan)
        if self.monitor is not None:
            self.monitor.step(end, day.rates[k], qber, up)
        self._fault_events_until(end)
        self.pools.deposit(day.km_bits[k])
        self._passes_until(end)
        due = end >= self.next_report or end >= self.scenario.duration_s
        for d in self.demands.values():
            asked = d.demand.rate_bps * day.widths[k]
            d.requested += asked
            d.unrelayed += asked
            if not due and d.unrelayed >= self.relay_bits:
                self._relay(d, end)  # a large ask relays before its pools overflow
        if due:
            self._relay_all(end)
        if end >= self.next_report:
            self._sample(end, day.rates[k], qber, up)
            self._report_dry(end)
            # the satellite KM-links whose key changed; an unrouted demand backing off its
            # searches also takes each hourly report as a chance (Controller.report)
            changed = self._satellite_states()
            if changed or (self.sats is not None
                           and any(d.route is None for d in self.demands.values())):
                self._report(end, changed)
            self.next_report += REPORT_S

    # -- satellites ---------------------------------------------------------------------

    def _passes_until(self, end: float) -> None:
        """Each pass that ended before ``end`` (s) leaves its key in its pool."""
        passes, sats = self.passes, self.sats
        while self.next_pass < len(passes) and passes[self.next_pass].set_s < end:
            p = passes[self.next_pass]
            assert sats is not None  # a scenario with passes has satellites
            self.pass_kept.append(sats.fill(p.satellite, p.station, p.key_bits))
            self.next_pass += 1

    def _satellite_states(self, every: bool = False) -> list[KMLinkState]:
        """The satellite KM-links whose key changed since last reported (all: ``every``):
        the key through their best satellite, no steady refill, up."""
        if self.sats is None:
            return []
        now = self.sats.relayable_all()
        changed = np.arange(now.size) if every else np.nonzero(now != self.sat_reported)[0]
        self.sat_reported = now
        return [KMLinkState(self.sats.km_links[i], float(now[i]), 0.0, True)
                for i in changed.tolist()]

    # -- rates -------------------------------------------------------------------------

    def _day_of_steps(self, first: int, count: int) -> _Steps:
        step, duration = self.scenario.step_s, self.scenario.duration_s
        times: FloatArray = (first + np.arange(count, dtype=np.float64)) * step
        widths: FloatArray = np.minimum(times + step, duration) - times
        extra = self._extra_qber(times, step)
        up_share = self._up_share(times, widths)
        rates = self.table.at(extra) * up_share
        return _Steps(times, widths, rates, self.intrinsic_qber[None, :] + extra, up_share,
                      self.supply.bits(rates * widths[:, None]))

    def _add_to_means(self, day: _Steps) -> None:
        """Add a day to each link's mean rate and each segment's weekly minimum rate."""
        self.rate_sum += (day.rates * day.widths[:, None]).sum(0)
        weeks = self.scenario.weeks
        week = np.minimum((day.times // WEEK_S).astype(np.intp), weeks - 1)
        for s, cols in enumerate(self.segment_columns):
            np.add.at(self.segment_sum[s], week, day.rates[:, cols].min(1) * day.widths)
        np.add.at(self.week_s, week, day.widths)

    def _extra_qber(self, times: FloatArray, step: float) -> FloatArray:
        if self.dynamics is None:
            return np.zeros((times.size, len(self.links)))
        return self.dynamics.extra_qber(times, step)

    def _up_share(self, times: FloatArray, widths: FloatArray) -> FloatArray:
        """Share of each step each link is up, shape (steps, links)."""
        share = np.ones((times.size, len(self.links)))
        t0, t1 = float(times[0]), float(times[-1] + widths[-1])
        for link, spans in self.link_outages.items():
            col = self.column[link]
            for span in spans:
                if span.end <= t0 or span.start >= t1:
                    continue
                down = np.clip(np.minimum(times + widths, span.end)
                               - np.maximum(times, span.start), 0.0, None)
                share[:, col] -= down / widths
        return np.clip(share, 0.0, 1.0)

    def _segment_columns(self) -> list[IndexArray]:
        """Each segment's QKD-links: the shortest fibre path between its waypoints."""
        net, points = self.scenario.network, self.scenario.segments
        return [np.array([self.column[lk.id] for lk in path_links(net, shortest_path(net, a, b))],
                         dtype=np.intp)
                for a, b in itertools.pairwise(points)]

    # -- key relay ---------------------------------------------------------------------

    def _relay_all(self, now: float) -> None:
        """Each demand relays what it asked for since its last relay."""
        for d in self.demands.values():
            self._relay(d, now)

    def _relay(self, d: _DemandState, now: float) -> None:
        """The demand relays the keys it asked for since its last relay, as many as its
        route can pay for, through the Key Managers; the rest go unserved."""
        key_bits = d.demand.key_bits
        wanted = int(d.unrelayed // key_bits)
        d.unrelayed -= wanted * key_bits
        if wanted == 0 or d.route is None:
            return
        count = relayable_keys(self.stores, d.route, key_bits, wanted) \
            if d.route.hops else wanted
        if count and self._relay_keys(d, count, now):
            d.served += count * key_bits
            if d.satellite_rows:
                d.satellite_bits += count * key_bits

    def _relay_keys(self, d: _DemandState, count: int, now: float) -> bool:
        """One relay of ``count`` keys along the demand's route; True if it was delivered.
        The keys travel as one key of ``count`` times the whole units each takes, so every
        hop pays what a relay of ``count`` separate keys costs, without ``count`` key_IDs."""
        assert d.route is not None
        d.relays += 1
        size = count * key_units(d.demand.key_bits) * UNIT_BITS
        request = KeyRequest((f"{d.demand.id}/{d.relays}",), size, d.demand.source,
                             d.demand.target, d.route)
        outcomes = self.kms.submit(d.route.source, request, now)
        delivered = any(isinstance(o, KeyDelivered) for o in outcomes)
        d.delivered_relays += delivered
        return delivered

    # -- control -----------------------------------------------------------------------

    def _fault_events(self) -> list[tuple[float, int, int, bool]]:
        """Fault starts and ends as a heap of (time, order, link column, up)."""
        heap: list[tuple[float, int, int, bool]] = []
        for link, spans in self.link_outages.items():
            for span in spans:
                heap.append((span.start, len(heap), self.column[link], False))
                if span.end < self.scenario.duration_s:
                    heap.append((span.end, len(heap), self.column[link], True))
        heapq.heapify(heap)
        return heap

    def _fault_events_until(self, end: float) -> None:
        """Report each fault start and end before ``end`` (s) at its exact time: the
        KM-links over the QKD-link, up while all their QKD-links are."""
        events = self.fault_events
        while events and events[0][0] < end:
            when, _, i, up = heapq.heappop(events)
            self._report(when, [self._state(row, up and not self._is_down(row, when))
                                for row in self.supply.feeds[i]])

    def _state(self, i: int, up: bool) -> KMLinkState:
        return KMLinkState(self.km_links[i].id, float(self.pools.relayable[i]),
                           float(self.km_static[i]), up)

    def _report(self, when: float, states: list[KMLinkState]) -> None:
        self._apply(when, self.controller.report(states))

    def _report_dry(self, when: float) -> None:
        """Report the KM-links whose pools ran dry or recovered since the last report."""
        dry = self.pools.relayable < DRY_BITS
        flipped = np.nonzero(dry != self._dry)[0]
        self._dry = dry
        if flipped.size:
            up = {i for i in flipped.tolist() if not self._is_down(i, when)}
            self._report(when, [self._state(i, i in up) for i in flipped.tolist()])

    def _is_down(self, i: int, when: float) -> bool:
        """Whether KM-link row ``i`` is down at ``when`` (s): a QKD-link of its path is."""
        return any(s.start <= when < s.end for col in self.supply.paths[i].tolist()
                   for s in self.link_outages.get(self.links[col].id, ()))

    def _apply(self, when: float, changes: list[RouteChanged]) -> None:
        for change in changes:
            d = self.demands[change.demand]
            d.changes.append((when, change.reason))
            d.route = change.route
            d.satellite_rows = [] if change.route is None or self.sats is None else [
                self.sats.km_links.index(km) for km in change.route.km_links
                if self.sats.serves(km)]
            if change.route is None:
                d.columns = np.zeros(0, dtype=np.intp)
                if d.down_since is None:
                    d.down_since = when
            else:
                d.columns = np.array([self.km_column[km] for km in change.route.km_links
                                      if km in self.km_column], dtype=np.intp)
                if d.down_since is not None and when > d.down_since:
                    d.outages.append(Interval(d.down_since, when))
                d.down_since = None

    # -- samples and result ------------------------------------------------------------

    def _sample(self, when: float, rates: FloatArray, qber: FloatArray,
                up: npt.NDArray[np.bool_]) -> None:
        """The hourly sample: key in all pools, share of dry pools, each watched demand's
        emptiest pool on its route, and the step's link telemetry."""
        relayable = self.pools.relayable
        self.samples.append([when, float(self.pools.pooled.sum()),
                             float(np.mean(relayable < DRY_BITS)),
                             *(self._route_pool(self.demands[d.id], relayable)
                               for d in self.scenario.demands)])
        self.telemetry.append((rates.astype(np.float32), qber.astype(np.float32), up))
        if self.sats is not None:
            self.sat_samples.append(self.sats.pooled.copy())

    def _route_pool(self, d: _DemandState, relayable: FloatArray) -> float:
        """Key (bits) the tightest KM-link of the demand's route can relay; 0 without a
        route."""
        if d.route is None:
            return 0.0
        fibre = float(relayable[d.columns].min()) if d.columns.size \
            else self.pools.capacity_bits
        if d.satellite_rows and self.sats is not None:
            return min(fibre, *(self.sats.relayable(self.sats.km_links[r])
                                for r in d.satellite_rows))
        return fibre

    def _result(self) -> TwinResult:
        sc, n = self.scenario, len(self.links)
        end = sc.duration_s
        services = {}
        for d in self.demands.values():
            if d.down_since is not None and end > d.down_since:
                d.outages.append(Interval(d.down_since, end))
            services[d.demand.id] = ServiceResult(
                d.demand, outages(d.outages), d.requested, d.served, tuple(d.changes),
                d.route.hops if d.route is not None else 0, d.delivered_relays,
                d.satellite_bits)
        segment_weekly = self.segment_sum / np.maximum(self.week_s, 1e-9)
        segments = tuple(
            SegmentResult(a, b, tuple(self.link_ids[i] for i in self.segment_columns[s]),
                          tuple(float(x) for x in segment_weekly[s]),
                          services[_segment_id(a, b)])
            for s, (a, b) in enumerate(zip(sc.segments, sc.segments[1:], strict=False)))
        pool = np.array(self.samples).reshape(-1, 3 + len(sc.demands))
        p, tel = self.pools, self.telemetry
        return TwinResult(
            sc, self.link_ids, self.table.static.copy(), self.rate_sum / end,
            p.made.copy(), p.used.copy(), p.pooled.copy(), p.discarded.copy(),
            self.link_outages, self.faults,
            tuple(services[d.id] for d in sc.demands), segments,
            pool[:, 0], pool[:, 1], pool[:, 2], pool[:, 3:],
            self.monitor.alarms() if self.monitor is not None else (),
            telemetry_t=pool[:, 0].copy(),
            telemetry_skr_bps=np.array([r for r, _, _ in tel], dtype=np.float32
                                       ).reshape(-1, n),
            telemetry_qber=np.array([q for _, q, _ in tel], dtype=np.float32).reshape(-1, n),
            telemetry_up=np.array([u for _, _, u in tel], dtype=bool).reshape(-1, n),
            satellite=self._satellite_result(pool[:, 0]),
            km_link_ids=tuple(k.id for k in self.km_links))

    def _satellite_result(self, times: FloatArray) -> SatelliteResult | None:
        sats = self.sats
        if sats is None:
            return None
        shape = (len(self.sat_samples), len(sats.satellites), len(sats.stations))
        return SatelliteResult(
            sats.satellites, sats.stations, tuple(self.passes[:self.next_pass]),
            np.array(self.pass_kept), sats.made.copy(), sats.used.copy(),
            sats.pooled.copy(), sats.discarded.copy(), sats.km_links, sats.relayed.copy(),
            times.copy(), np.array(self.sat_samples).reshape(shape))


def _segment_id(a: str, b: str) -> str:
    return f"segment:{a}~{b}"


def _link_outages(faults: tuple[Fault, ...]) -> dict[str, Outages]:
    by_link: dict[str, list[tuple[float, float]]] = {}
    for f in faults:
        if f.end_s > f.start_s:
            by_link.setdefault(f.link, []).append((f.start_s, f.end_s))
    return {link: outages(spans) for link, spans in by_link.items()}
