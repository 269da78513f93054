"""The O&M endpoints of ``qkdnet serve``: the NMS's view of the running network, over plain
HTTP on its own port (``om_url`` in the manifest). No key material ever reaches the NMS.

- ``GET /metrics``: Prometheus exposition format (``qkdnet_link_skr_bits_per_second``…);
- ``GET /api/state``: the latest state of every element as JSON;
- ``GET /api/alarms``: active alarms (each with its root ``cause``, see
  :mod:`qkdnet.management.correlation`) and the history, from the NMS's rules;
- ``POST /api/alarms/{id}/ack`` with ``{"by": "<operator>"}``: acknowledge an alarm (the
  first acknowledgement is kept);
- ``POST /api/links/{link}/cut``, ``/blind`` (a blinding attack: the detector-current
  monitor trips) and ``/repair``, ``POST /api/nodes/{node}/stop`` and ``/start``: fault
  injection for operators and tests (409 when the app replays a twin run and has no live
  network). A cut or blinded link, or every link of a stopped node, makes no key, its
  KM-links report down and the control layer routes around it; the report goes to the NMS
  and the consoles at once, so the alarms show without waiting for the next tick, and clear
  the same way after the repair or start;
- ``GET /``: the web console (static files in ``qkdnet/live/console``, no build step): a
  lon/lat map with links coloured by SKR, the active alarms, per-link history charts and the
  availability table, fed by the endpoints below;
- ``GET /api/topology``: nodes with coordinates, QKD-links with their kind, and whether
  fault injection is available;
- ``GET /api/history/{link}``: a QKD-link's SKR and QBER series from the NMS ring buffer;
- ``GET /api/availability``: per-QKD-link outage hours and availability over the time the
  NMS has seen;
- ``GET /api/events``: Server-Sent Events, a ``state`` event (``t``, each link's SKR and up
  flag, the stopped nodes, the active alarms) at connect, after each NMS report (at most one
  per EVENT_MIN_GAP_S) and at least every EVENT_INTERVAL_S.

The handlers are ``async`` so that they run on the event loop that owns the key network.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import AsyncIterator, Iterable
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST

from qkdnet.errors import ParameterError
from qkdnet.live.reports import LiveReports, Updates
from qkdnet.management.alarms import Alarm, AlarmEngine
from qkdnet.management.correlation import Correlator
from qkdnet.management.metrics import exposition
from qkdnet.management.nms import Nms
from qkdnet.topology.model import Network, NodeKind

#: The console's static files and their media types; nothing else is served from the folder.
CONSOLE_FILES = {"index.html": "text/html; charset=utf-8",
                 "console.js": "text/javascript; charset=utf-8",
                 "console.css": "text/css; charset=utf-8"}
#: Seconds between two ``state`` events of ``/api/events`` when nothing is reported.
EVENT_INTERVAL_S = 1.0
#: Least seconds between two ``state`` events, however fast reports come (a fast replay).
EVENT_MIN_GAP_S = 0.1

_BACKBONE = {NodeKind.BACKBONE_ACCESS, NodeKind.BACKBONE_RELAY}


def _alarm(a: Alarm, cause: str | None = None) -> dict[str, Any]:
    return {"id": a.id, "rule": a.rule, "severity": a.severity.name.lower(),
            "subject": a.subject, "text": a.text, "raised_at": a.raised_at,
            "cleared_at": a.cleared_at, "acknowledged_at": a.acknowledged_at,
            "acknowledged_by": a.acknowledged_by, "cause": cause}


def active_alarms(alarms: AlarmEngine, correlator: Correlator) -> list[dict[str, Any]]:
    """The active alarms, each with ``cause``: the id of the active alarm at the root of
    what raised it (a stopped node for its links' alarms), None for a root."""
    active = alarms.active()
    roots = correlator.roots(active)
    return [_alarm(a, roots.get(a.id)) for a in active]


def _finite(values: Iterable[float]) -> list[float | None]:
    """Floats for JSON: NaN and infinities become None."""
    return [v if math.isfinite(v) else None for v in values]


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
    """The map data of the console: nodes with coordinates, QKD-links with their kind."""
    return {
        "name": network.name,
        "nodes": [{"id": n.id, "name": n.name or n.id, "kind": str(n.kind),
                   "lat": n.lat, "lon": n.lon} for n in network.nodes],
        "links": [{"id": lk.id, "a": lk.a, "b": lk.b, "kind": link_kind(network, lk.id),
                   "device_type": lk.device_type, "length_km": lk.length_km}
                  for lk in network.qkd_links],
    }


def availability_report(nms: Nms) -> dict[str, Any]:
    """Outages and availability of the QKD-links over the time the NMS has seen: from the
    oldest sample it still holds (or the oldest outage) to its latest. Only links with an
    outage are listed; the summary covers all of them."""
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
    total = 0.0
    for i, o in timelines.items():
        latest = nms.link_state(i)
        down_now = latest is not None and not latest.up
        if not o and not down_now:
            continue
        down = sum(iv.length for iv in o)
        total += down / 3600.0
        # an outage reported this instant has no length yet, but it is one
        rows.append({"link": i, "outages": max(len(o), int(down_now)),
                     "outage_hours": down / 3600.0, "down_now": down_now,
                     "availability": nms.availability(i, start, end) if span > 0 else None})
    mean = None if span <= 0 else 1.0 - total * 3600.0 / (span * len(ids))
    return {"start": start, "end": end, "links": rows,
            "summary": {"links": len(ids), "links_with_outage": len(rows),
                        "outage_hours": total, "availability": mean}}


def state_event(nms: Nms, alarms: AlarmEngine, correlator: Correlator) -> dict[str, Any]:
    """The payload of one ``state`` event: each reported link's SKR and up flag, the nodes
    whose KM reports down, and the active alarms."""
    links = nms.latest("links")
    skr = _finite(links.columns["skr_bps"].tolist())
    up = links.columns["up"].tolist()
    nodes = nms.latest("nodes")
    return {"t": nms.now,
            "links": {i: {"skr_bps": s, "up": bool(u)}
                      for i, s, u in zip(links.ids, skr, up, strict=True)},
            "nodes_down": [i for i, ok in zip(nodes.ids, nodes.columns["ok"].tolist(),
                                              strict=True) if not ok],
            "alarms": active_alarms(alarms, correlator)}


def _console_file(name: str) -> str:
    return (resources.files("qkdnet.live") / "console" / name).read_text(encoding="utf-8")


def make_om_app(nms: Nms, alarms: AlarmEngine, updates: Updates | None = None,
                live: LiveReports | None = None) -> FastAPI:
    """The O&M application over ``nms`` and its ``alarms``; ``updates`` wakes its event
    streams (``live``'s own when given). Without ``live`` (a replay of a twin run) fault
    injection answers 409."""
    app = FastAPI(title="qkdnet O&M", docs_url=None, redoc_url=None)
    if live is not None:
        updates = live.updates
    pulse = updates or Updates()
    correlator = Correlator(nms.network)

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(exposition(nms), media_type=CONTENT_TYPE_LATEST)

    @app.get("/api/state")
    async def state() -> JSONResponse:
        snapshot: dict[str, Any] = nms.snapshot()
        return JSONResponse(snapshot)

    @app.get("/api/alarms")
    async def alarm_list() -> JSONResponse:
        return JSONResponse({"active": active_alarms(alarms, correlator),
                             "history": [_alarm(a) for a in alarms.history()]})

    @app.post("/api/alarms/{alarm_id}/ack")
    async def acknowledge(alarm_id: str, request: Request) -> JSONResponse:
        try:
            body = await request.json() if await request.body() else {}
        except ValueError:
            return _problem(400, "the body must be JSON: {\"by\": \"<operator>\"}")
        by = body.get("by") if isinstance(body, dict) else None
        if not isinstance(by, str) or not by.strip():
            return _problem(400, "field 'by': the name of the acknowledging operator")
        try:
            alarm = alarms.acknowledge(alarm_id, max(time.time(), nms.now or 0.0), by.strip())
        except ParameterError as exc:
            return _problem(404 if exc.name == "alarm_id" else 400, str(exc))
        pulse.notify()
        return JSONResponse(_alarm(alarm))

    @app.get("/")
    async def console() -> HTMLResponse:
        return HTMLResponse(_console_file("index.html"))

    @app.get("/console.js")
    async def console_js() -> Response:
        return Response(_console_file("console.js"), media_type=CONSOLE_FILES["console.js"])

    @app.get("/console.css")
    async def console_css() -> Response:
        return Response(_console_file("console.css"), media_type=CONSOLE_FILES["console.css"])

    @app.get("/api/topology")
    async def topology_of() -> JSONResponse:
        return JSONResponse({**topology(nms.network), "fault_injection": live is not None})

    @app.get("/api/history/{link}")
    async def history(link: str) -> JSONResponse:
        if link not in nms.network.link:
            return _problem(404, f"unknown QKD-link {link!r}")
        h = nms.history(link)
        return JSONResponse({"link": link, "t": _finite(h.t.tolist()),
                             "skr_bps": _finite(h.skr_bps.tolist()),
                             "qber": _finite(h.qber.tolist()),
                             "alarms": [_alarm(a) for a in alarms.active_for(link)]})

    @app.get("/api/availability")
    async def availability() -> JSONResponse:
        return JSONResponse(availability_report(nms))

    @app.get("/api/events")
    async def events(request: Request) -> StreamingResponse:
        async def stream() -> AsyncIterator[str]:
            yield "retry: 2000\n\n"
            while not await request.is_disconnected():
                seen = pulse.generation
                data = json.dumps(state_event(nms, alarms, correlator), allow_nan=False)
                yield f"event: state\ndata: {data}\n\n"
                # at most one event per EVENT_MIN_GAP_S however fast reports come in
                await asyncio.sleep(EVENT_MIN_GAP_S)
                await pulse.wait(seen, EVENT_INTERVAL_S - EVENT_MIN_GAP_S)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache",
                                          "X-Accel-Buffering": "no"})

    @app.post("/api/links/{link}/{action}")
    async def link_fault(link: str, action: str) -> JSONResponse:
        if action not in ("cut", "repair", "blind"):
            return _problem(404, f"unknown action {action!r}: cut, repair or blind")
        if live is None:
            return _problem(409, "fault injection needs a live network (qkdnet serve)")
        if link not in live.keynet.network.link:
            return _problem(404, f"unknown QKD-link {link!r}")
        if action == "blind":
            live.keynet.faults.blind(link)
        else:
            live.keynet.faults.cut(link, action == "cut")
        live.report_now()
        return JSONResponse({"link": link, "up": link not in live.keynet.faults.down_links(),
                             "blinded": link in live.keynet.faults.blinded_links})

    @app.post("/api/nodes/{node}/{action}")
    async def node_fault(node: str, action: str) -> JSONResponse:
        if action not in ("stop", "start"):
            return _problem(404, f"unknown action {action!r}: stop or start")
        if live is None:
            return _problem(409, "fault injection needs a live network (qkdnet serve)")
        if node not in live.keynet.network.node:
            return _problem(404, f"unknown node {node!r}")
        live.keynet.faults.stop(node, action == "stop")
        live.report_now()
        return JSONResponse({"node": node, "running": node not in live.keynet.faults.stopped_nodes})

    return app


def _problem(status: int, message: str) -> JSONResponse:
    return JSONResponse({"message": message}, status_code=status)
