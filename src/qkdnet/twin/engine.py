"""The twin driver: the whole network over weeks of simulated time.

Two clocks of a kind, both simulated:

- vectorised steps (``step_s``, 5 min by default): every QKD-link's key rate from the
  quantum layer (:class:`~qkdnet.quantum.rate_table.RateTable`) under the day-night drift and
  vibration bursts (:mod:`qkdnet.quantum.dynamics`), cut by the part of each step it is down;
  the key made goes into the KM-link pools and the demands draw their key along their
  routes (:class:`~qkdnet.twin.pools.KeyPools`), a day of steps at a time;
- events, exact in time: a fault starting or ending is reported to the control layer's
  :class:`~qkdnet.control.protection.ProtectionController` (the code a live network runs),
  which switches demands to their backup, reroutes them or finds no route. Whether each
  service can be served is therefore known to the second, not to the step. Once an hour the
  KMs also report the KM-links whose pools ran dry or recovered.

The run is a pure function of the scenario (seeded); :func:`run_twin` returns a
:class:`TwinResult` that the report renders.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from qkdnet.control.link_state import KMLinkState
from qkdnet.control.protection import Demand, ProtectionController, RouteChanged
from qkdnet.control.router import controllers_for
from qkdnet.keys.manager import pad_units
from qkdnet.keys.pool import UNIT_BYTES
from qkdnet.management.alarms import Alarm
from qkdnet.management.availability import Interval, Outages, outages
from qkdnet.quantum.dynamics import DAY_S, LinkDynamics
from qkdnet.quantum.rate_table import RateTable, intrinsic_qber
from qkdnet.topology.model import KMLinkKind
from qkdnet.topology.paths import path_links, shortest_path
from qkdnet.twin.faults import Fault, FaultModel, draw_faults, scripted_fault
from qkdnet.twin.monitoring import TwinMonitor
from qkdnet.twin.pools import KeyPools
from qkdnet.twin.scenario import WEEK_S, TwinDemand, TwinScenario

FloatArray = npt.NDArray[np.float64]
IndexArray = npt.NDArray[np.intp]
F32Array = npt.NDArray[np.float32]

#: How often KMs report pools that ran dry or recovered (s of simulated time).
REPORT_S = 3600.0
#: A pool below this many bits counts as dry in those reports.
DRY_BITS = 4096.0
#: Key asked per relay request by a watched segment service (bits).
SEGMENT_NEED_BITS = 256

Progress = Callable[[float, float], None]


@dataclass(frozen=True)
class ServiceResult:
    """One demand over the run: when it had no usable route, and how much key it got."""

    demand: TwinDemand
    outages: Outages
    requested_bits: float
    served_bits: float
    route_changes: tuple[tuple[float, str], ...]
    hops: int

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
class TwinResult:
    """Everything a run measured. Per-link arrays follow ``link_ids`` (the QKD-links; each
    has its direct KM-link and pool). Pools are sampled hourly at ``pool_times_s``: key in
    all pools, the share of dry pools, and per demand (columns in ``services`` order) the
    key in the emptiest pool of its route."""

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

    def __post_init__(self) -> None:
        self.index.update((lk, i) for i, lk in enumerate(self.link_ids))

    @property
    def watched_links(self) -> tuple[str, ...]:
        """The QKD-links of the whole watched path, in order."""
        return tuple(lk for s in self.segments for lk in s.links)


def run_twin(scenario: TwinScenario, progress: Progress | None = None) -> TwinResult:
    """Run ``scenario``; ``progress(done_s, total_s)`` is called after each simulated day."""
    return _Run(scenario).run(progress)


class _Run:
    def __init__(self, scenario: TwinScenario) -> None:
        self.sc = scenario
        net = scenario.network
        self.links = net.qkd_links
        self.ix = {lk.id: i for i, lk in enumerate(self.links)}
        self.km_ix = {k.id: self.ix[k.path[0]] for k in net.km_links
                      if k.kind is KMLinkKind.DIRECT}
        self.km_of = {i: km for km, i in self.km_ix.items()}
        self.table = RateTable(self.links)
        n = len(self.links)
        self.dynamics = LinkDynamics(n, scenario.duration_s, scenario.seed + 1) \
            if scenario.dynamics else None
        self.faults = self._faults(scenario.fault_model)
        self.link_outages = _link_outages(self.faults)
        self.pools = KeyPools(n, scenario.pool_bits)
        self.protection = ProtectionController(controllers_for(net))
        # Smallest requests first, so a bulk one-time-pad line cannot starve key refreshes.
        self.demands = sorted(scenario.demands, key=lambda d: d.rate_bps) + [
            TwinDemand(_segment_id(a, b), a, b, 0.0, SEGMENT_NEED_BITS)
            for a, b in zip(scenario.segments, scenario.segments[1:], strict=False)]
        self._down_since: dict[str, float] = {}
        self._outages: dict[str, list[Interval]] = {d.id: [] for d in self.demands}
        self._changes: dict[str, list[tuple[float, str]]] = {d.id: [] for d in self.demands}
        self._route: dict[str, IndexArray] = {}
        self._dry = np.ones(n, dtype=bool)  # pools start empty, as first reported
        self._seg_cols: list[IndexArray] = []
        # The NMS, fed each step: a link whose whole step is down reads down, and CV links
        # report no QBER (their error figure is excess noise).
        self.link_ids = tuple(lk.id for lk in self.links)
        self.monitor = TwinMonitor(net, self.link_ids)
        self.intrinsic_qber = intrinsic_qber(self.links)

    def _faults(self, model: FaultModel) -> tuple[Fault, ...]:
        sc = self.sc
        drawn = draw_faults(sc.network, sc.duration_s, sc.seed, model) \
            if sc.random_faults else []
        scripted = [scripted_fault(f.link, f.start_s, min(f.duration_s,
                                                          sc.duration_s - f.start_s))
                    for f in sc.faults]
        return tuple(sorted(drawn + scripted, key=lambda f: (f.start_s, f.link)))

    def run(self, progress: Progress | None) -> TwinResult:
        sc, n = self.sc, len(self.links)
        self._report(0.0, [self._state(i, up=True) for i in range(n)])
        for d in self.demands:
            demand = Demand(d.id, d.source, d.target, float(d.key_bits))
            self._apply(0.0, [self.protection.add(demand)])
        events = self._events()
        step = sc.step_s
        steps = int(np.ceil(sc.duration_s / step))
        per_day = max(1, round(DAY_S / step))
        weeks = sc.weeks
        rate_sum = np.zeros(n)
        seg_cols = self._seg_cols = self._segment_columns()
        seg_sum = np.zeros((len(seg_cols), weeks))
        seg_steps = np.zeros(weeks)
        requested = {d.id: 0.0 for d in self.demands}
        served = {d.id: 0.0 for d in self.demands}
        samples: list[list[float]] = []
        tel: list[tuple[F32Array, F32Array, npt.NDArray[np.bool_]]] = []
        next_report = REPORT_S
        for first in range(0, steps, per_day):
            count = min(per_day, steps - first)
            times: FloatArray = (first + np.arange(count, dtype=np.float64)) * step
            widths: FloatArray = np.minimum(times + step, sc.duration_s) - times
            extra = self._extra_qber(times, step)
            up_share = self._up_share(times, widths)
            rates = self.table.at(extra) * up_share
            rate_sum += (rates * widths[:, None]).sum(0)
            week = np.minimum((times // WEEK_S).astype(np.intp), weeks - 1)
            for s, cols in enumerate(seg_cols):
                np.add.at(seg_sum[s], week, rates[:, cols].min(1) * widths)
            np.add.at(seg_steps, week, widths)
            made = rates * widths[:, None]
            qber = self.intrinsic_qber[None, :] + extra
            for k, t in enumerate(times):
                end = t + widths[k]
                up = up_share[k] > 0  # a link down all step measures no SKR or QBER
                up_k, qber_k = up, np.where(up, qber[k], np.nan)
                self.monitor.step(float(end), rates[k], qber_k, up)
                while events and events[0][0] < end:
                    when, _, i, up = heapq.heappop(events)
                    self._report(when, [self._state(i, up)])
                self.pools.deposit(made[k])
                for d in self.demands:
                    if d.rate_bps <= 0:
                        continue
                    need = d.rate_bps * widths[k]
                    requested[d.id] += need
                    route = self._route.get(d.id)
                    if route is not None:
                        hop_bits = need * pad_units(d.key_bits) * UNIT_BYTES * 8 / d.key_bits
                        served[d.id] += need * self.pools.draw(route, hop_bits)
                self.pools.spill()
                if end >= next_report:
                    samples.append([end, float(self.pools.pooled.sum()),
                                    float(np.mean(self.pools.pooled < DRY_BITS)),
                                    *(self._route_pool(d.id) for d in sc.demands)])
                    tel.append((rates[k].astype(np.float32), qber_k.astype(np.float32), up_k))
                    self._report_dry(end)
                    next_report += REPORT_S
            if progress is not None:
                progress(float(times[-1] + widths[-1]), sc.duration_s)
        return self._result(rate_sum / sc.duration_s, seg_sum / np.maximum(seg_steps, 1e-9),
                            requested, served, samples, tel)

    # -- rates -------------------------------------------------------------------------

    def _extra_qber(self, times: FloatArray, step: float) -> FloatArray:
        if self.dynamics is None:
            return np.zeros((times.size, len(self.links)))
        return self.dynamics.extra_qber(times, step)

    def _up_share(self, times: FloatArray, widths: FloatArray) -> FloatArray:
        """Share of each step each link is up, shape (steps, links)."""
        share = np.ones((times.size, len(self.links)))
        t0, t1 = float(times[0]), float(times[-1] + widths[-1])
        for link, spans in self.link_outages.items():
            col = self.ix[link]
            for span in spans:
                if span.end <= t0 or span.start >= t1:
                    continue
                down = np.clip(np.minimum(times + widths, span.end)
                               - np.maximum(times, span.start), 0.0, None)
                share[:, col] -= down / widths
        return np.clip(share, 0.0, 1.0)

    def _segment_columns(self) -> list[IndexArray]:
        """Each segment's QKD-links: the shortest fibre path between its waypoints."""
        net = self.sc.network
        return [np.array([self.ix[lk.id] for lk in path_links(net, shortest_path(net, a, b))],
                         dtype=np.intp)
                for a, b in zip(self.sc.segments, self.sc.segments[1:], strict=False)]

    # -- control -----------------------------------------------------------------------

    def _events(self) -> list[tuple[float, int, int, bool]]:
        """Fault starts and ends as a heap of (time, order, link index, up)."""
        heap: list[tuple[float, int, int, bool]] = []
        for link, spans in self.link_outages.items():
            for span in spans:
                heap.append((span.start, len(heap), self.ix[link], False))
                if span.end < self.sc.duration_s:
                    heap.append((span.end, len(heap), self.ix[link], True))
        heapq.heapify(heap)
        return heap

    def _state(self, i: int, up: bool) -> KMLinkState:
        return KMLinkState(self.km_of[i], float(self.pools.pooled[i]),
                           float(self.table.static[i]), up)

    def _report(self, when: float, states: list[KMLinkState]) -> None:
        self._apply(when, self.protection.handle_all(states))

    def _report_dry(self, when: float) -> None:
        """Report the KM-links whose pools ran dry or recovered since the last report."""
        dry = self.pools.pooled < DRY_BITS
        flipped = np.nonzero(dry != self._dry)[0]
        self._dry = dry
        if flipped.size:
            up = {i for i in flipped.tolist() if not self._is_down(i, when)}
            self._report(when, [self._state(i, i in up) for i in flipped.tolist()])

    def _route_pool(self, demand: str) -> float:
        """Key (bits) in the emptiest pool of the demand's route; 0 without a route."""
        route = self._route.get(demand)
        if route is None:
            return 0.0
        return float(self.pools.pooled[route].min()) if route.size else self.pools.capacity_bits

    def _is_down(self, i: int, when: float) -> bool:
        return any(s.start <= when < s.end for s in self.link_outages.get(self.links[i].id, ()))

    def _apply(self, when: float, changes: list[RouteChanged]) -> None:
        for change in changes:
            self._changes[change.demand].append((when, change.reason))
            if change.path is None:
                self._route.pop(change.demand, None)
                self._down_since.setdefault(change.demand, when)
            else:
                self._route[change.demand] = np.array(
                    [self.km_ix[km] for km in change.path.km_links], dtype=np.intp)
                since = self._down_since.pop(change.demand, None)
                if since is not None and when > since:
                    self._outages[change.demand].append(Interval(since, when))

    # -- result ------------------------------------------------------------------------

    def _result(self, mean_bps: FloatArray, seg_weekly: FloatArray,
                requested: dict[str, float], served: dict[str, float],
                samples: list[list[float]],
                tel: list[tuple[F32Array, F32Array, npt.NDArray[np.bool_]]]) -> TwinResult:
        end = self.sc.duration_s
        for demand, since in self._down_since.items():
            if end > since:
                self._outages[demand].append(Interval(since, end))
        self._down_since.clear()
        services = {d.id: ServiceResult(
            d, outages(self._outages[d.id]), requested[d.id], served[d.id],
            tuple(self._changes[d.id]),
            len(self._route[d.id]) if d.id in self._route else 0)
            for d in self.demands}
        cols = self._seg_cols
        segments = tuple(
            SegmentResult(a, b, tuple(self.links[i].id for i in cols[s]),
                          tuple(float(x) for x in seg_weekly[s]),
                          services[_segment_id(a, b)])
            for s, (a, b) in enumerate(zip(self.sc.segments, self.sc.segments[1:],
                                           strict=False)))
        pool = np.array(samples).reshape(-1, 3 + len(self.sc.demands))
        p, n = self.pools, len(self.links)
        return TwinResult(
            self.sc, tuple(lk.id for lk in self.links), self.table.static.copy(), mean_bps,
            p.made.copy(), p.used.copy(), p.pooled.copy(), p.discarded.copy(),
            self.link_outages, self.faults,
            tuple(services[d.id] for d in self.sc.demands), segments,
            pool[:, 0], pool[:, 1], pool[:, 2], pool[:, 3:], self.monitor.alarms(),
            telemetry_t=pool[:, 0].copy(),
            telemetry_skr_bps=np.array([r for r, _, _ in tel], dtype=np.float32
                                       ).reshape(-1, n),
            telemetry_qber=np.array([q for _, q, _ in tel], dtype=np.float32).reshape(-1, n),
            telemetry_up=np.array([u for _, _, u in tel], dtype=bool).reshape(-1, n))


def _segment_id(a: str, b: str) -> str:
    return f"segment:{a}~{b}"


def _link_outages(faults: tuple[Fault, ...]) -> dict[str, Outages]:
    by_link: dict[str, list[tuple[float, float]]] = {}
    for f in faults:
        if f.end_s > f.start_s:
            by_link.setdefault(f.link, []).append((f.start_s, f.end_s))
    return {link: outages(spans) for link, spans in by_link.items()}
