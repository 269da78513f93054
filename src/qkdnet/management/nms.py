"""Element and network management systems: EMS per region, one NMS at the O&M centre.

In CN-QCN each region's EMS collects the status of its own nodes and links and reports it
north to the NMS (ITU-T Y.3802's management layer). Here an :class:`Ems` filters telemetry
batches (:mod:`qkdnet.management.telemetry`) down to its region's rows and forwards them;
the :class:`Nms` ingests batches from every EMS and keeps:

* the latest sample of every QKD-link, KM-link and node;
* per QKD-link ring buffers of (time s, SKR bit/s, QBER) with a fixed capacity;
* per QKD-link and KM-link outage timelines built from up/down transitions, from which
  :meth:`Nms.availability` reads figures with :mod:`qkdnet.management.availability`.

Time is whatever the caller passes in ``t`` (seconds): simulated time from the digital twin,
wall-clock time from ``qkdnet serve``; nothing here reads a clock.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from itertools import chain
from typing import Any, Literal, NamedTuple, TypeAlias, TypeVar

import numpy as np
from numpy.typing import NDArray

from qkdnet.errors import ParameterError
from qkdnet.management.availability import Interval, Outages, outages
from qkdnet.management.availability import availability as _availability
from qkdnet.management.satellite import SatelliteStatus
from qkdnet.management.telemetry import (
    Batch,
    BoolArray,
    FloatArray,
    IdsCache,
    IndexArray,
    KMLinkTelemetry,
    LinkTelemetry,
    NodeHealth,
    join,
)
from qkdnet.topology.model import Network

DEFAULT_HISTORY_POINTS = 1024
"""Samples kept per QKD-link by default (1,062 links x 1,024 x 3 columns is ~26 MB)."""

_INDEX_CACHE_LIMIT = 1024  # distinct id tuples remembered; bounds memory for varied senders

B = TypeVar("B", LinkTelemetry, KMLinkTelemetry, NodeHealth)
Kind: TypeAlias = Literal["links", "km_links", "nodes"]


def _regions(network: Network) -> tuple[str, ...]:
    """Region ids in declaration order, then any region a node names that is not declared,
    so that every node (hence every row) has exactly one EMS."""
    found = [r.id for r in network.regions]
    found += sorted({n.region for n in network.nodes} - set(found))
    return tuple(found)


def _element_regions(network: Network) -> dict[Kind, dict[str, str]]:
    """Region of every element: a node's own, a QKD-link's or KM-link's end ``a``'s."""
    return {
        "links": {lk.id: network.node[lk.a].region for lk in network.qkd_links},
        "km_links": {k.id: network.node[k.a].region for k in network.km_links},
        "nodes": {n.id: n.region for n in network.nodes},
    }


_WHAT: dict[Kind, str] = {"links": "QKD-link", "km_links": "KM-link", "nodes": "node"}
_FIELD: dict[Kind, str] = {"links": "link", "km_links": "km_link", "nodes": "node"}


def _kind_of(batch: Batch) -> Kind:
    if isinstance(batch, LinkTelemetry):
        return "links"
    if isinstance(batch, KMLinkTelemetry):
        return "km_links"
    return "nodes"


class Ems:
    """The element management system of one region: keeps the rows of its own nodes, of
    the QKD-links and of the KM-links whose end ``a`` lies in the region."""

    def __init__(self, region: str, network: Network) -> None:
        known = _regions(network)
        if region not in known:
            raise ParameterError("region", region, f"one of {', '.join(known)}")
        self.region = region
        self.network = network
        self._region_of = _element_regions(network)
        # per kind and batch ids: this region's row positions and their ids
        self._rows: dict[Kind, IdsCache[tuple[IndexArray, tuple[str, ...]]]] = {
            kind: IdsCache(_INDEX_CACHE_LIMIT) for kind in _WHAT}

    def collect(self, batch: B) -> B:
        """This region's rows of ``batch``, as a batch of the same kind, to send north.

        Raises :class:`~qkdnet.errors.ParameterError` for an id the network lacks.
        """
        rows, ids = self._rows_of(batch)
        if rows.size == batch.rows:
            return batch  # all ours: forward the batch itself, no copy
        return batch.take(rows, ids)

    def _rows_of(self, batch: Batch) -> tuple[IndexArray, tuple[str, ...]]:
        kind = _kind_of(batch)
        found = self._rows[kind].get(batch.ids)
        if found is None:
            region_of = self._region_of[kind]
            mine: list[int] = []
            for k, item in enumerate(batch.ids):
                where = region_of.get(item)
                if where is None:
                    raise ParameterError(_FIELD[kind], item,
                                         f"not a {_WHAT[kind]} of network {self.network.name}")
                if where == self.region:
                    mine.append(k)
            found = self._rows[kind].put(batch.ids, (np.array(mine, dtype=np.intp),
                                                     tuple(batch.ids[k] for k in mine)))
        return found


def ems_for(network: Network) -> dict[str, Ems]:
    """One EMS per region of ``network``, by region id."""
    return {region: Ems(region, network) for region in _regions(network)}


class History(NamedTuple):
    """A QKD-link's recent samples, oldest first: time (s), SKR (bit/s), QBER (ratio)."""

    t: FloatArray
    skr_bps: FloatArray
    qber: FloatArray


@dataclass(frozen=True, slots=True)
class LinkStatus:
    """The latest sample of a QKD-link: time (s), SKR (bit/s), QBER (ratio, NaN if not
    measured), up, detector-current alarm."""

    t: float
    skr_bps: float
    qber: float
    up: bool
    detector_current_alarm: bool


@dataclass(frozen=True, slots=True)
class KMLinkStatus:
    """The latest sample of a KM-link: time (s), key held (bits), refill rate (bit/s), up."""

    t: float
    key_bits: float
    rate_bps: float
    up: bool


@dataclass(frozen=True, slots=True)
class NodeStatus:
    """The latest health report of a node's Key Manager: time (s), ok."""

    t: float
    ok: bool


@dataclass(frozen=True)
class Latest:
    """The latest sample of every element of one kind that has reported at least once, in
    network order: ids, their regions, sample times (s) and one array per column."""

    ids: tuple[str, ...]
    regions: tuple[str, ...]
    t: FloatArray
    columns: Mapping[str, NDArray[Any]]


class _Table:
    """Latest state of one kind of element: id -> column position, the time of each
    element's last sample (NaN before the first) and one array per value."""

    def __init__(self, kind: Kind, network: Network, ids: tuple[str, ...],
                 columns: Mapping[str, np.dtype[Any]]) -> None:
        self.kind = kind
        self.network_name = network.name
        self.ids = ids
        self.position = {item: k for k, item in enumerate(ids)}
        region_of = _element_regions(network)[kind]
        self.regions = tuple(region_of[i] for i in ids)
        self.last_t = np.full(len(ids), math.nan)
        self.newest = -math.inf  # the latest of last_t: a sample this late needs no check
        self.columns = {name: np.zeros(len(ids), dtype=dt) for name, dt in columns.items()}
        self._index: IdsCache[IndexArray] = IdsCache(_INDEX_CACHE_LIMIT)

    def columns_of(self, ids: tuple[str, ...]) -> IndexArray:
        """Positions of ``ids``; computed once per distinct id tuple, then cached."""
        cols = self._index.get(ids)
        if cols is None:
            position = self.position
            for item in ids:
                if item not in position:
                    raise ParameterError(_FIELD[self.kind], item,
                                         f"not a {_WHAT[self.kind]} of network "
                                         f"{self.network_name}")
            cols = self._index.put(ids, np.fromiter((position[i] for i in ids),
                                                    dtype=np.intp, count=len(ids)))
        return cols

    def check_order(self, cols: IndexArray, t: float) -> None:
        """Refuse a sample older than an element's last one: the timelines need order."""
        if cols.size == 0 or t >= self.newest:
            return
        last = self.last_t[cols]
        late = np.flatnonzero(last > t)  # NaN (never reported) compares False
        if late.size:
            k = int(late[0])
            raise ParameterError("t", t, f"must not be before the last sample "
                                         f"t={float(last[k]):g} s of {self.ids[cols[k]]}")

    def store(self, ids: tuple[str, ...], t: float, values: Mapping[str, NDArray[Any]]
              ) -> IndexArray:
        """Write one batch's columns at ``t`` (s), all or nothing; returns the positions."""
        cols = self.columns_of(ids)
        self.check_order(cols, t)
        for name, value in values.items():
            self.columns[name][cols] = value
        self.last_t[cols] = t
        self.newest = max(self.newest, t)
        return cols

    def col(self, item: str) -> int:
        """Position of one id, or ParameterError naming it."""
        try:
            return self.position[item]
        except KeyError:
            raise ParameterError(_FIELD[self.kind], item, f"not a {_WHAT[self.kind]} of "
                                                          f"network {self.network_name}") from None

    def latest(self) -> Latest:
        reported = np.flatnonzero(~np.isnan(self.last_t))
        return Latest(tuple(self.ids[k] for k in reported.tolist()),
                      tuple(self.regions[k] for k in reported.tolist()),
                      self.last_t[reported],
                      {name: arr[reported] for name, arr in self.columns.items()})


class _Timelines:
    """Outage timelines from up/down samples: an outage opens at the first down sample and
    closes at the first up sample after it. Before its first sample an element counts as up
    (nothing is known against it)."""

    def __init__(self, n: int) -> None:
        self.down_since = np.full(n, math.nan)  # start of the open outage, NaN when up
        self.closed: list[list[Interval]] = [[] for _ in range(n)]
        self.open = 0  # outages open now

    def update(self, cols: IndexArray, t: float, up: BoolArray) -> None:
        if not self.open and up.all():
            return  # the steady state: all up, nothing to close
        is_open = ~np.isnan(self.down_since[cols])
        opening = cols[~up & ~is_open]
        self.down_since[opening] = t
        ending = cols[up & is_open]
        self.open += opening.size - ending.size
        # transitions are rare, so a Python loop over them costs nothing in steady state
        for c in ending.tolist():
            start = float(self.down_since[c])
            if t > start:  # down and up in the same instant is no outage
                self.closed[c].append(Interval(start, t))
        self.down_since[ending] = math.nan

    def outages(self, col: int, until: float | None) -> Outages:
        items = list(self.closed[col])
        start = float(self.down_since[col])
        if not math.isnan(start) and until is not None and until > start:
            items.append(Interval(start, until))
        return outages(items)


class _Joins:
    """The joined ids of groups of batches, kept per group layout: the EMSs send the same
    tuples every report, so the group is recognised by the identity of its tuples."""

    def __init__(self) -> None:
        # ids() of each tuple -> (the tuples, kept so their ids are not reused; joined ids,
        # None where the batches share an element and cannot be joined)
        self._known: dict[tuple[int, ...], tuple[tuple[tuple[str, ...], ...],
                                                 tuple[str, ...] | None]] = {}

    def ids_of(self, group: list[Batch]) -> tuple[str, ...] | None:
        """The joined ids of ``group``, None if two of its batches share an element."""
        parts = tuple(b.ids for b in group)
        key = tuple(map(id, parts))
        hit = self._known.get(key)
        if hit is None or any(a is not b for a, b in zip(hit[0], parts, strict=True)):
            ids = tuple(chain.from_iterable(parts))
            if len(self._known) >= _INDEX_CACHE_LIMIT:
                self._known.clear()
            hit = self._known[key] = (parts, ids if len(set(ids)) == len(ids) else None)
        return hit[1]


class Nms:
    """The network management system: ingests telemetry from every EMS.

    ``history_points`` is the ring-buffer capacity per QKD-link (samples, >= 1); when full
    the oldest sample is overwritten. Every batch is checked whole (ids, time order) before
    anything is stored, so a refused batch leaves the NMS as it was.
    """

    def __init__(self, network: Network, history_points: int = DEFAULT_HISTORY_POINTS) -> None:
        if history_points < 1:
            raise ParameterError("history_points", history_points, "must be >= 1")
        self.network = network
        self.history_points = history_points
        f64, b = np.dtype(np.float64), np.dtype(np.bool_)
        self._links = _Table("links", network, tuple(network.link), {
            "skr_bps": f64, "qber": f64, "up": b, "detector_current_alarm": b})
        self._km = _Table("km_links", network, tuple(network.km_link), {
            "key_bits": f64, "rate_bps": f64, "up": b})
        self._nodes = _Table("nodes", network, tuple(network.node), {"ok": b,
                                                                       "store_ok": b})
        n = len(self._links.ids)
        self._hist_t = np.full((n, history_points), math.nan)
        self._hist_skr = np.full((n, history_points), math.nan)
        self._hist_qber = np.full((n, history_points), math.nan)
        self._hist_count = np.zeros(n, dtype=np.int64)  # samples ever written per link
        self._link_timelines = _Timelines(n)
        self._km_timelines = _Timelines(len(self._km.ids))
        self._now: float | None = None
        self._records = 0
        self._joins = _Joins()
        #: The satellite segment (pools, passes), where a driver emulates passes.
        self.satellite: SatelliteStatus | None = None

    @property
    def now(self) -> float | None:
        """The latest sample time ingested (s), None before the first batch."""
        return self._now

    @property
    def records(self) -> int:
        """Records (rows) ingested so far."""
        return self._records

    def ingest(self, batch: Batch) -> int:
        """Store one batch; returns its record count.

        Raises :class:`~qkdnet.errors.ParameterError` for an id the network lacks or a
        sample older than an element's previous one; nothing is stored then.
        """
        if isinstance(batch, LinkTelemetry):
            self._ingest_links(batch)
        elif isinstance(batch, KMLinkTelemetry):
            self._ingest_km(batch)
        else:
            self._ingest_nodes(batch)
        self._now = batch.t if self._now is None else max(self._now, batch.t)
        self._records += batch.rows
        return batch.rows

    def ingest_all(self, batches: Iterable[Batch]) -> int:
        """Store several batches; returns the records ingested. Batches of one kind and
        one time with no element in common, such as every EMS's report of one instant,
        are joined and stored as one (all or nothing), at about the cost of one."""
        groups: dict[tuple[type, float], list[Batch]] = {}
        for batch in batches:
            groups.setdefault((type(batch), batch.t), []).append(batch)
        records = 0
        for group in groups.values():
            ids = self._joins.ids_of(group) if len(group) > 1 else None
            if ids is None:
                records += sum(self.ingest(b) for b in group)
            else:
                records += self.ingest(join(group, ids))
        return records

    def _ingest_links(self, batch: LinkTelemetry) -> None:
        t = batch.t
        cols = self._links.store(batch.ids, t, {
            "skr_bps": batch.skr_bps, "qber": batch.qber, "up": batch.up,
            "detector_current_alarm": batch.detector_current_alarm})
        # ids are unique within a batch, so fancy-indexed writes never collide; written
        # through flat positions, as a 1-D fancy write costs a fraction of a 2-D one
        count = self._hist_count[cols]
        at = cols * self.history_points + count % self.history_points
        self._hist_t.reshape(-1)[at] = t
        self._hist_skr.reshape(-1)[at] = batch.skr_bps
        self._hist_qber.reshape(-1)[at] = batch.qber
        self._hist_count[cols] = count + 1
        self._link_timelines.update(cols, t, batch.up)

    def _ingest_km(self, batch: KMLinkTelemetry) -> None:
        cols = self._km.store(batch.ids, batch.t, {
            "key_bits": batch.key_bits, "rate_bps": batch.rate_bps, "up": batch.up})
        self._km_timelines.update(cols, batch.t, batch.up)

    def _ingest_nodes(self, batch: NodeHealth) -> None:
        self._nodes.store(batch.ids, batch.t, {"ok": batch.ok, "store_ok": batch.store_ok})

    # -- latest state -------------------------------------------------------------------

    def link_status(self, link: str) -> LinkStatus | None:
        """The latest sample of a QKD-link, None if it never reported."""
        k = self._links.col(link)
        t = float(self._links.last_t[k])
        if math.isnan(t):
            return None
        c = self._links.columns
        return LinkStatus(t, float(c["skr_bps"][k]), float(c["qber"][k]), bool(c["up"][k]),
                          bool(c["detector_current_alarm"][k]))

    def km_link_status(self, km_link: str) -> KMLinkStatus | None:
        """The latest sample of a KM-link, None if it never reported."""
        k = self._km.col(km_link)
        t = float(self._km.last_t[k])
        if math.isnan(t):
            return None
        c = self._km.columns
        return KMLinkStatus(t, float(c["key_bits"][k]), float(c["rate_bps"][k]),
                            bool(c["up"][k]))

    def node_status(self, node: str) -> NodeStatus | None:
        """The latest health report of a node, None if it never reported."""
        k = self._nodes.col(node)
        t = float(self._nodes.last_t[k])
        return None if math.isnan(t) else NodeStatus(t, bool(self._nodes.columns["ok"][k]))

    def latest(self, kind: Kind) -> Latest:
        """The latest samples of every reported element of ``kind`` (copies)."""
        table = {"links": self._links, "km_links": self._km, "nodes": self._nodes}.get(kind)
        if table is None:
            raise ParameterError("kind", kind, "one of links, km_links, nodes")
        return table.latest()

    def snapshot(self) -> dict[str, Any]:
        """The latest state as plain JSON-ready data (for the web console): ``t`` (s, None
        before the first batch) and, per reported element by id, its sample time and values.
        A QBER that was not measured is None (JSON has no NaN)."""
        links = self._links.latest()
        km = self._km.latest()
        nodes = self._nodes.latest()
        lc, kc = links.columns, km.columns
        return {
            "t": self._now,
            "links": {
                i: {"region": r, "t": t, "skr_bps": s, "qber": None if math.isnan(q) else q,
                    "up": u, "detector_current_alarm": a}
                for i, r, t, s, q, u, a in zip(
                    links.ids, links.regions, links.t.tolist(), lc["skr_bps"].tolist(),
                    lc["qber"].tolist(), lc["up"].tolist(),
                    lc["detector_current_alarm"].tolist(), strict=True)
            },
            "km_links": {
                i: {"region": r, "t": t, "key_bits": kb, "rate_bps": rb, "up": u}
                for i, r, t, kb, rb, u in zip(
                    km.ids, km.regions, km.t.tolist(), kc["key_bits"].tolist(),
                    kc["rate_bps"].tolist(), kc["up"].tolist(), strict=True)
            },
            "nodes": {
                i: {"region": r, "t": t, "ok": ok}
                for i, r, t, ok in zip(nodes.ids, nodes.regions, nodes.t.tolist(),
                                       nodes.columns["ok"].tolist(), strict=True)
            },
        }

    # -- history and availability -------------------------------------------------------

    def history(self, link: str) -> History:
        """The QKD-link's last ``history_points`` samples at most, oldest first (copies)."""
        k = self._links.col(link)
        count, cap = int(self._hist_count[k]), self.history_points
        # once the ring is full the oldest sample sits where the next write would go
        order = np.arange(count) if count <= cap else (np.arange(cap) + count % cap) % cap
        return History(self._hist_t[k, order], self._hist_skr[k, order],
                       self._hist_qber[k, order])

    def _timeline(self, item: str) -> tuple[_Timelines, int]:
        in_links, in_km = item in self._links.position, item in self._km.position
        if in_links and in_km:
            raise ParameterError("link", item, "names both a QKD-link and a KM-link")
        if in_links:
            return self._link_timelines, self._links.position[item]
        if in_km:
            return self._km_timelines, self._km.position[item]
        raise ParameterError("link", item, f"not a QKD-link or KM-link of network "
                                           f"{self.network.name}")

    def outages(self, link: str, until: float | None = None) -> Outages:
        """Outage timeline of a QKD-link or KM-link (s). An outage still open is closed at
        ``until`` (default: the latest time ingested)."""
        timelines, k = self._timeline(link)
        return timelines.outages(k, self._now if until is None else until)

    def availability(self, link: str, start: float, end: float) -> float:
        """Fraction of ``[start, end)`` (s) during which a QKD-link or KM-link was up; an
        outage still open counts as lasting to ``end``."""
        timelines, k = self._timeline(link)
        return _availability(timelines.outages(k, end), start, end)
