"""Services, not only links: each SAE pair of the live network and each demand of the twin
as the O&M centre sees it, with the QoS parameters of ITU-T Y.3807 (sans-I/O).

A *service* is key delivered from a master SAE to a slave SAE. Live, it is named
``master->slave`` and is born at the master's first key request that reaches the network
(as the control layer declares a demand at its first request); in the twin it is a demand,
named by its id. At each report a service is in one state:

* ``unserved``: no route joins the SAEs' nodes (the control layer has none), or the Key
  Manager of an end is down: every key request gets 503. A ``service-unserved`` alarm is
  raised for it (:data:`~qkdnet.management.alarms.DEFAULT_RULES`), explained by its root
  fault: the stopped node, cut link or down KM-link on the routes the service was planned
  on (working and backup) or last used (:mod:`qkdnet.management.correlation`);
* ``degraded``: a route exists, but the service runs on another than its working route
  (protection switched, rerouted) or some of its requests were refused (503) since the
  last report (key ran short on the route);
* ``served``: otherwise.

The QoS parameters of ITU-T Y.3807 (clause 8), as measured here (live; the twin's are
:func:`twin_qos`). "Keys" are the keys an SAE asks for in one request (``number``), of
``size`` bits each; a request is one ``enc_keys`` call.

* **throughput** (8.1), bit/s: key bits delivered to the master over the last report
  interval, divided by its length; Prometheus also gets the delivered bits as a counter,
  whose ``rate()`` is the throughput over any window;
* **KKRD**, KSA-key response delay (8.2), s: time from the KME taking an ``enc_keys``
  request (its body read and checked) to the keys being held at the slave's node and ready
  to return, for requests that were served; the mean over the last
  :data:`DELAYS_KEPT` served requests;
* **KKRDV**, KSA-key response delay variation (8.3), s: the 0.99-quantile of those delays
  minus their minimum (the delay variation of ITU-T Y.1540: delay less the least delay);
* **KKDER**, KSA-key delivery error ratio (8.4), ratio: keys the slave asked for by key_ID
  (``dec_keys``) that its KME could not hand over (unknown or unreleasable: the two ends do
  not hold the same key) over all keys it asked for by key_ID; NaN before it asks any;
* **KKDLR**, KSA-key delivery loss ratio (8.5), ratio: keys asked for in requests the
  network refused (503: no route, a stopped KM, key short) over all keys asked for in
  requests it took (served or refused; a malformed or unauthorised request, 400/401, is the
  client's and is not counted);
* **availability** (8.6), ratio: the fraction of the time since the service was born
  during which it was not unserved;
* **service restoration time** (8.6.1), s: how long the last outage (an unserved spell)
  lasted, from the report that found it unserved to the report that found it served again;
  their mean is given too. Reports come every second, so times are to the second.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

import numpy as np

from qkdnet.keys.route import Route
from qkdnet.management.alarms import AlarmEngine, AlarmEvent
from qkdnet.management.availability import Interval, Outages
from qkdnet.management.availability import availability as _availability
from qkdnet.management.correlation import Correlator
from qkdnet.management.nms import Nms

ServiceState: TypeAlias = Literal["served", "degraded", "unserved"]
STATES: tuple[ServiceState, ...] = ("served", "degraded", "unserved")

#: Served requests whose response delay a pair keeps (KKRD, KKRDV).
DELAYS_KEPT = 256


class PairCounts:
    """What the KMEs counted of one SAE pair since start (plain counters, cheap per call):
    requests taken and refused (503), keys asked for, delivered and lost, key bits
    delivered, keys the slave asked for by key_ID and those not handed over, the last
    refusal's reason and the response delays (s) of the last :data:`DELAYS_KEPT` served
    requests."""

    __slots__ = ("bits_delivered", "delays", "keys_asked_by_id", "keys_delivered",
                 "keys_lost", "keys_not_released", "last_refusal", "refused", "requests")

    def __init__(self) -> None:
        self.requests = 0
        self.refused = 0
        self.keys_delivered = 0
        self.keys_lost = 0
        self.bits_delivered = 0
        self.keys_asked_by_id = 0
        self.keys_not_released = 0
        self.last_refusal = ""
        self.delays: deque[float] = deque(maxlen=DELAYS_KEPT)


class RequestCounts:
    """The KMEs' per-request facts, by (master SAE, slave SAE): each call is a dict look-up
    and a few additions, no clock and no log (the key path is performance-critical); the
    NMS reads them at each report (:meth:`ServiceView.report`). Only pairs of known SAEs
    reach it (the KME refuses others before), so it is bounded by the scenario."""

    def __init__(self) -> None:
        self.pairs: dict[tuple[str, str], PairCounts] = {}

    def _pair(self, master: str, slave: str) -> PairCounts:
        counts = self.pairs.get((master, slave))
        if counts is None:
            counts = self.pairs[(master, slave)] = PairCounts()
        return counts

    def delivered(self, master: str, slave: str, keys: int, bits: int, delay_s: float) -> None:
        """A request of ``keys`` keys, ``bits`` in all, was served after ``delay_s`` (s)."""
        counts = self._pair(master, slave)
        counts.requests += 1
        counts.keys_delivered += keys
        counts.bits_delivered += bits
        counts.delays.append(delay_s)

    def refused(self, master: str, slave: str, keys: int, reason: str) -> None:
        """A request of ``keys`` keys was refused with 503 for ``reason`` (no key material
        in it)."""
        counts = self._pair(master, slave)
        counts.requests += 1
        counts.refused += 1
        counts.keys_lost += keys
        counts.last_refusal = reason

    def released(self, master: str, slave: str, keys: int, handed: bool) -> None:
        """The slave asked for ``keys`` keys by key_ID; ``handed``: whether it got them."""
        counts = self._pair(master, slave)
        counts.keys_asked_by_id += keys
        if not handed:
            counts.keys_not_released += keys


@dataclass(frozen=True, slots=True)
class ServiceRoutes:
    """Where a service's key goes at a report: the nodes of its SAEs (``source``, the
    master's; ``target``, the slave's), the route it uses now (None: none) and those it was
    planned on (working, then backup), from the control layer."""

    source: str
    target: str
    active: Route | None
    planned: tuple[Route, ...] = ()


@dataclass(frozen=True, slots=True)
class ServiceQoS:
    """The Y.3807 parameters of one service (see the module's docstring for how each is
    measured): throughput (bit/s), KKRD and KKRDV (s), KKDER and KKDLR (ratios),
    availability (ratio), the last and the mean service restoration time (s) and the
    outages counted. NaN: not measured (no request yet, or not modelled)."""

    throughput_bps: float
    kkrd_s: float
    kkrdv_s: float
    kkder: float
    kkdlr: float
    availability: float
    restoration_s: float
    mean_restoration_s: float
    outages: int

    def as_json(self) -> dict[str, Any]:
        """The parameters by name, NaN as None (JSON has no NaN)."""
        return {name: _json_number(getattr(self, name)) for name in self.__slots__}


def _json_number(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _ratio(part: float, whole: float) -> float:
    return part / whole if whole else math.nan


def restoration_times(timeline: Outages) -> tuple[float, float]:
    """The last and the mean length (s) of the closed outages of ``timeline``; NaN
    without one."""
    if not timeline:
        return math.nan, math.nan
    lengths = [iv.length for iv in timeline]
    return lengths[-1], sum(lengths) / len(lengths)


def twin_qos(requested_bits: float, served_bits: float, timeline: Outages, start: float,
             end: float) -> ServiceQoS:
    """The Y.3807 parameters of a twin demand over the run ``[start, end)`` (s), from the
    key it asked for and was served (bits) and its unserved spells: throughput = served
    bits over the run's length (bit/s); KKDLR = key asked for but not served over key asked
    for; availability = the share of the run with a route; restoration times = the lengths
    of the spells that ended before the run did. The twin relays key between Key Managers
    only, with no SAE waiting on a KME, so KKRD, KKRDV and KKDER are not modelled (NaN)."""
    closed = tuple(iv for iv in timeline if iv.end < end)
    last, mean = restoration_times(closed)
    span = end - start
    return ServiceQoS(
        served_bits / span if span > 0 else math.nan, math.nan, math.nan, math.nan,
        max(0.0, 1.0 - served_bits / requested_bits) if requested_bits else math.nan,
        _availability(timeline, start, end) if span > 0 else math.nan, last, mean,
        len(timeline))


class _Service:
    """What the view keeps of one service between reports."""

    def __init__(self, master: str, slave: str, t: float) -> None:
        self.master, self.slave = master, slave
        self.born = t
        self.t = t  # the last report
        self.state: ServiceState = "served"
        self.since = t  # when the state began (s)
        self.routes = ServiceRoutes("", "", None)
        self.seen_refused = 0
        self.seen_bits = 0
        self.throughput_bps = math.nan
        self.down_since: float | None = None
        self.closed: list[Interval] = []
        self.causes: list[str] = []  # ids of the root alarms, while unserved
        self.counts = PairCounts()


def _delay_figures(delays: Sequence[float]) -> tuple[float, float]:
    """KKRD (mean, s) and KKRDV (0.99-quantile less minimum, s) of ``delays``."""
    if not delays:
        return math.nan, math.nan
    arr = np.fromiter(delays, dtype=np.float64, count=len(delays))
    return float(arr.mean()), float(np.quantile(arr, 0.99) - arr.min())


class ServiceView:
    """The services of the network ``nms`` watches: their state, route, key delivered,
    requests refused and Y.3807 QoS, from the KMEs' counts and the control layer's routes
    at each report; their ``service-unserved`` alarms go to ``alarms``.

    :attr:`causes` names, by service, the alarms that would explain its being unserved
    (node down or key store fault of a node, QKD-link down or detector blinding of a
    QKD-link, KM-link down of a KM-link, on its routes); a
    :class:`~qkdnet.management.correlation.Correlator` made with it files the
    ``service-unserved`` alarm under its root fault."""

    def __init__(self, nms: Nms, alarms: AlarmEngine) -> None:
        self.nms = nms
        self.alarms = alarms
        self.causes: dict[str, tuple[tuple[str, str], ...]] = {}
        self.correlator = Correlator(nms.network, self.causes)
        self._services: dict[str, _Service] = {}

    def report(self, t: float, counts: Mapping[tuple[str, str], PairCounts],
               routes: Mapping[str, ServiceRoutes]) -> list[AlarmEvent]:
        """One report at ``t`` (s): the KMEs' ``counts`` by (master, slave) since start and
        each service's ``routes`` by service id (``master->slave``; a service without is
        taken as having no route). Returns the alarms raised and cleared."""
        events: list[AlarmEvent] = []
        for (master, slave), pair in list(counts.items()):
            sid = f"{master}->{slave}"
            service = self._services.get(sid)
            if service is None:
                service = self._services[sid] = _Service(master, slave, t)
            service.counts = pair
            service.routes = routes.get(sid) or ServiceRoutes("", "", None)
            state = self._state(service, pair)
            self._update(service, sid, t, state, pair)
            events += self.alarms.observe(t, "service", sid,
                                          {"served": float(state != "unserved")})
        if any(s.state == "unserved" for s in self._services.values()):
            self._find_roots()
        return events

    def _state(self, service: _Service, pair: PairCounts) -> ServiceState:
        routes = service.routes
        if routes.active is None:
            return "unserved"
        for end in (routes.source, routes.target):
            status = self.nms.node_status(end)
            if status is not None and not status.ok:
                return "unserved"
        # counts that dropped were reset (a restarted node process): all are new since
        if pair.refused > service.seen_refused or 0 < pair.refused < service.seen_refused:
            return "degraded"
        if routes.planned and routes.active != routes.planned[0]:
            return "degraded"
        return "served"

    def _update(self, service: _Service, sid: str, t: float, state: ServiceState,
                pair: PairCounts) -> None:
        span = t - service.t
        bits = pair.bits_delivered - service.seen_bits
        if bits < 0:  # the counts were reset (a restarted node process): all are new since
            bits = pair.bits_delivered
        service.throughput_bps = bits / span if span > 0 else service.throughput_bps
        service.seen_bits, service.seen_refused, service.t = pair.bits_delivered, \
            pair.refused, t
        if state != service.state:
            service.state, service.since = state, t
        if state == "unserved":
            if service.down_since is None:
                service.down_since = t
            self.causes[sid] = self._candidates(service.routes)
        else:
            if service.down_since is not None and t > service.down_since:
                service.closed.append(Interval(service.down_since, t))
            service.down_since = None
            service.causes = []
            self.causes.pop(sid, None)

    def _candidates(self, routes: ServiceRoutes) -> tuple[tuple[str, str], ...]:
        """The (rule, subject) pairs that would explain the service's being unserved: on
        its ends and the routes it was planned on or uses, nodes first, then QKD-links,
        then KM-links (the most basic faults first)."""
        network = self.nms.network
        paths = [r for r in (routes.active, *routes.planned) if r is not None]
        nodes = dict.fromkeys(n for n in (routes.source, routes.target) if n)
        km_links: dict[str, None] = {}
        for path in paths:
            nodes.update(dict.fromkeys(path.nodes))
            km_links.update(dict.fromkeys(path.km_links))
        links = dict.fromkeys(lk for km in km_links if km in network.km_link
                              for lk in network.km_link[km].path)
        return (*((rule, n) for n in nodes for rule in ("node-down", "key-store-fault")),
                *((rule, lk) for lk in links for rule in ("qkd-link-down", "detector-current")),
                *(("km-link-down", km) for km in km_links))

    def _find_roots(self) -> None:
        """Each unserved service's root faults: the active alarms on its routes, each
        followed to its root (a KM-link down to the node stopped under it)."""
        active = self.alarms.active()
        by_key = {(a.rule, a.subject): a.id for a in active}
        roots = self.correlator.roots(active)
        for sid, service in self._services.items():
            if service.state != "unserved":
                continue
            found = (by_key.get(c) for c in self.causes.get(sid, ()))
            ids = (roots.get(i, i) for i in found if i is not None)
            service.causes = list(dict.fromkeys(ids))

    def qos(self, sid: str) -> ServiceQoS:
        """The Y.3807 parameters of service ``sid`` now (KeyError for an unknown one)."""
        service = self._services[sid]
        pair = service.counts
        timeline: list[Interval] = list(service.closed)
        if service.down_since is not None and service.t > service.down_since:
            timeline.append(Interval(service.down_since, service.t))
        last, mean = restoration_times(tuple(service.closed))
        kkrd, kkrdv = _delay_figures(pair.delays)
        span = service.t - service.born
        return ServiceQoS(
            service.throughput_bps, kkrd, kkrdv,
            _ratio(pair.keys_not_released, pair.keys_asked_by_id),
            _ratio(pair.keys_lost, pair.keys_lost + pair.keys_delivered),
            _availability(tuple(timeline), service.born, service.t) if span > 0 else 1.0,
            last, mean, len(timeline))

    def ids(self) -> list[str]:
        """The services seen so far, in order of birth."""
        return list(self._services)

    def state(self, sid: str) -> ServiceState:
        """The state of service ``sid`` at the last report (KeyError for an unknown one)."""
        return self._services[sid].state

    def records(self) -> list[dict[str, Any]]:
        """Every service as JSON data: ids, state and since when (s), its route (nodes;
        None without), key delivered (keys, bits), requests taken and refused, the last
        refusal's reason, the root faults while unserved (alarm id, rule, subject) and the
        Y.3807 QoS."""
        alarms = {a.id: a for a in self.alarms.active()}
        out = []
        for sid, s in self._services.items():
            pair = s.counts
            active = s.routes.active
            out.append({
                "id": sid, "master": s.master, "slave": s.slave, "source": s.routes.source,
                "target": s.routes.target, "state": s.state, "since": s.since,
                "route": list(active.nodes) if active is not None else None,
                "keys_delivered": pair.keys_delivered,
                "key_delivered_bits": pair.bits_delivered, "requests": pair.requests,
                "requests_refused": pair.refused, "last_refusal": pair.last_refusal or None,
                "causes": [{"id": i, "rule": alarms[i].rule, "subject": alarms[i].subject}
                           for i in s.causes if i in alarms],
                "qos": self.qos(sid).as_json()})
        return out
