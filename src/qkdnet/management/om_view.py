"""What the O&M centre shows of the NMS, as plain JSON-ready data (sans-I/O): the map's
topology, the alarms with their root causes, the state events of the live console, a
link's history and the availability table. The HTTP endpoints of
:mod:`qkdnet.live.om_app` only serve these; a NaN becomes None, as JSON has no NaN.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from qkdnet.errors import ParameterError
from qkdnet.management.alarms import Alarm, AlarmEngine
from qkdnet.management.correlation import Correlator
from qkdnet.management.nms import Nms
from qkdnet.management.services import ServiceView
from qkdnet.topology.model import KMLinkKind, Network, NodeKind
from qkdnet.units import HOUR_S

_BACKBONE = {NodeKind.BACKBONE_ACCESS, NodeKind.BACKBONE_RELAY}


def link_kind(network: Network, link: str) -> str:
    """What a QKD-link belongs to by the kinds of its ends: ``user`` (a user node's access
    link), ``metro``, ``bsbn``, ``backbone`` (both ends backbone nodes) or ``other``
    (ground stations, the O&M centre)."""
    lk = network.link[link]
    kinds = {network.node[lk.a].kind, network.node[lk.b].kind}
    if NodeKind.USER in kinds:
        return "user"
    if NodeKind.METRO_ACCESS in kinds:
        return "metro"
    if NodeKind.BSBN in kinds:
        return "bsbn"
    if kinds <= _BACKBONE:
        return "backbone"
    return "other"


def topology(network: Network) -> dict[str, Any]:
    """The map data of the console: nodes with coordinates, QKD-links with their kind, and
    the satellite KM-links (ground station to ground station, no fibre under them)."""
    return {
        "name": network.name,
        "nodes": [{"id": n.id, "name": n.name or n.id, "kind": str(n.kind),
                   "lat": n.lat, "lon": n.lon} for n in network.nodes],
        "links": [{"id": lk.id, "a": lk.a, "b": lk.b, "kind": link_kind(network, lk.id),
                   "device_type": lk.device_type, "length_km": lk.length_km}
                  for lk in network.qkd_links],
        "satellite_links": [{"id": k.id, "a": k.a, "b": k.b} for k in network.km_links
                            if k.kind is KMLinkKind.SATELLITE],
    }


def alarm_record(a: Alarm, cause: str | None = None) -> dict[str, Any]:
    """One alarm as JSON data (times in s); ``cause`` is the id of its root-cause alarm."""
    return {"id": a.id, "rule": a.rule, "severity": a.severity.name.lower(),
            "subject": a.subject, "text": a.text, "raised_at": a.raised_at,
            "cleared_at": a.cleared_at, "acknowledged_at": a.acknowledged_at,
            "acknowledged_by": a.acknowledged_by, "cause": cause}


def finite(values: Iterable[float]) -> list[float | None]:
    """Floats for JSON: NaN and infinities become None."""
    return [v if math.isfinite(v) else None for v in values]


def availability_report(nms: Nms) -> dict[str, Any]:
    """Outages and availability of the QKD-links over the time the NMS has seen: from the
    oldest sample it still holds (or the oldest outage) to its latest. Only links with an
    outage are listed; the summary covers all of them. Hours for durations."""
    ids = [lk.id for lk in nms.network.qkd_links]
    end = nms.now
    starts = [float(h.t[0]) for h in map(nms.history, ids) if h.t.size]
    timelines = {i: nms.outages(i) for i in ids}
    starts += [o[0].start for o in timelines.values() if o]
    if end is None or not starts:
        return {"start": None, "end": end, "links": [],
                "summary": {"links": len(ids), "links_with_outage": 0, "outage_hours": 0.0,
                            "availability": None}}
    start = min(starts)
    span = end - start
    rows: list[dict[str, Any]] = []
    for i, o in timelines.items():
        latest = nms.link_status(i)
        down_now = latest is not None and not latest.up
        if not o and not down_now:
            continue
        down_h = sum(iv.length for iv in o) / HOUR_S
        # an outage reported this instant has no length yet, but it is one
        rows.append({"link": i, "outages": max(len(o), int(down_now)),
                     "outage_hours": down_h, "down_now": down_now,
                     "availability": nms.availability(i, start, end) if span > 0 else None})
    total = sum(r["outage_hours"] for r in rows)
    mean = None if span <= 0 else 1.0 - total * HOUR_S / (span * len(ids))
    return {"start": start, "end": end, "links": rows,
            "summary": {"links": len(ids), "links_with_outage": len(rows),
                        "outage_hours": total, "availability": mean}}


class OmView:
    """The O&M centre's view of ``nms`` and its ``alarms``, with each active alarm's root
    cause found by a :class:`~qkdnet.management.correlation.Correlator`, and of the
    ``services`` where a driver reports them (a service's alarm filed under its root
    fault)."""

    def __init__(self, nms: Nms, alarms: AlarmEngine,
                 services: ServiceView | None = None) -> None:
        self.nms = nms
        self.alarms = alarms
        self.service_view = services
        self.correlator = Correlator(nms.network,
                                     services.causes if services is not None else None)

    def topology(self, fault_injection: bool) -> dict[str, Any]:
        """The map data, and whether the console may offer fault injection."""
        return {**topology(self.nms.network), "fault_injection": fault_injection}

    def active_alarms(self) -> list[dict[str, Any]]:
        """The active alarms, each with ``cause``: the id of the active alarm at the root
        of what raised it (a stopped node for its links' alarms), None for a root."""
        active = self.alarms.active()
        roots = self.correlator.roots(active)
        return [alarm_record(a, roots.get(a.id)) for a in active]

    def alarm_list(self) -> dict[str, Any]:
        """The active alarms with their causes, and every alarm raised so far."""
        return {"active": self.active_alarms(),
                "history": [alarm_record(a) for a in self.alarms.history()]}

    def acknowledge(self, alarm_id: str, t: float, by: str) -> dict[str, Any]:
        """Operator ``by`` takes alarm ``alarm_id`` on at ``t`` (s, not before the NMS's
        latest sample); the alarm as it stands. ParameterError for an unknown id."""
        return alarm_record(self.alarms.acknowledge(alarm_id, max(t, self.nms.now or 0.0), by))

    def history(self, link: str) -> dict[str, Any]:
        """A QKD-link's SKR (bit/s) and QBER series from the NMS ring buffer with their
        times (s), and its active alarms. ParameterError for an unknown link."""
        if link not in self.nms.network.link:
            raise ParameterError("link", link, "a QKD-link of the network")
        h = self.nms.history(link)
        return {"link": link, "t": finite(h.t.tolist()), "skr_bps": finite(h.skr_bps.tolist()),
                "qber": finite(h.qber.tolist()),
                "alarms": [alarm_record(a) for a in self.alarms.active_for(link)]}

    def availability(self) -> dict[str, Any]:
        """The availability table (:func:`availability_report`)."""
        return availability_report(self.nms)

    def services(self) -> dict[str, Any]:
        """The services (:meth:`~qkdnet.management.services.ServiceView.records`) at the
        NMS's latest time ``t`` (s), and ``reported``: whether a driver reports them (not a
        replay, which has none)."""
        view = self.service_view
        return {"t": self.nms.now, "reported": view is not None,
                "services": [] if view is None else view.records()}

    def satellite(self) -> dict[str, Any] | None:
        """The satellite segment (:meth:`~qkdnet.management.satellite.SatelliteStatus.snapshot`:
        pools, passes in progress, recent outcomes), None where no driver emulates passes."""
        status = self.nms.satellite
        return None if status is None else status.snapshot()

    def state_event(self) -> dict[str, Any]:
        """The payload of one ``state`` event: each reported link's SKR and up flag, the
        nodes whose KM reports down, and the active alarms."""
        links = self.nms.latest("links")
        skr = finite(links.columns["skr_bps"].tolist())
        up = links.columns["up"].tolist()
        nodes = self.nms.latest("nodes")
        return {"t": self.nms.now,
                "links": {i: {"skr_bps": s, "up": bool(u)}
                          for i, s, u in zip(links.ids, skr, up, strict=True)},
                "nodes_down": [i for i, ok in zip(nodes.ids, nodes.columns["ok"].tolist(),
                                                  strict=True) if not ok],
                "alarms": self.active_alarms()}
