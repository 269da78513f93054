"""The O&M endpoints of ``qkdnet serve``: the NMS's view of the running network, over plain
HTTP on its own port (``om_url`` in the manifest). No key material ever reaches the NMS.

- ``GET /metrics``: Prometheus exposition format (``qkdnet_link_skr_bits_per_second``…);
- ``GET /api/state``: the latest state of every element as JSON;
- ``GET /api/alarms``: active alarms (each with its root ``cause``, see
  :mod:`qkdnet.management.correlation`) and the history, from the NMS's rules;
- ``POST /api/alarms/{id}/ack``: acknowledge an alarm under the logged-in operator's name
  (a replay, which has no login, takes ``{"by": "<operator>"}``); the first
  acknowledgement is kept;
- ``POST /api/links/{link}/cut``, ``/blind`` (a blinding attack: the detector-current
  monitor trips) and ``/repair``, ``POST /api/nodes/{node}/stop`` and ``/start``: fault
  injection for operators and tests (409 when the app replays a twin run and has no live
  network). A cut or blinded link, or every link of a stopped node, makes no key, its
  KM-links report down and the control layer routes around it; the report goes to the NMS
  and the consoles at once, so the alarms show without waiting for the next tick, and clear
  the same way after the repair or start; ``GET /api/faults``: the faults injected now;
- ``GET /``: the web console (static files in ``qkdnet/live/console``, no build step): a
  lon/lat map with links coloured by SKR, the active alarms, per-link history charts and the
  availability table, over the geography of ``GET /basemap.geojson``, fed by the endpoints
  below;
- ``GET /api/topology``: nodes with coordinates, QKD-links with their kind, and whether
  fault injection is available;
- ``GET /api/history/{link}``: a QKD-link's SKR and QBER series from the NMS ring buffer;
- ``GET /api/services``: each service (SAE pair) with its state (served, degraded,
  unserved), route, key delivered, requests refused, root faults while unserved and its
  ITU-T Y.3807 QoS (:mod:`qkdnet.management.services`); ``/metrics`` carries them too
  (:mod:`qkdnet.management.service_metrics`);
- ``GET /api/availability``: per-QKD-link outage hours and availability over the time the
  NMS has seen;
- ``GET /api/satellite``: each satellite's sub-satellite point, ground track (one orbit
  either side), footprint and passes in progress over the ground stations
  (:mod:`qkdnet.quantum.ground_track`), at the network's scenario time (s after
  :data:`~qkdnet.twin.satellite_passes.TWIN_EPOCH`: the wall clock since the app started,
  times the live network's speedup, :func:`~qkdnet.quantum.ground_track.scenario_time_s`);
  ``?t=S`` asks for scenario time S instead;
- ``GET /api/events``: Server-Sent Events, a ``state`` event (``t``, each link's SKR and up
  flag, the stopped nodes, the active alarms) at connect, after each NMS report (at most one
  per EVENT_MIN_GAP_S) and at least every EVENT_INTERVAL_S.

Who may call what, and from where, is :mod:`qkdnet.live.om_access`'s gate in front of this
app (``POST /api/login``, ``/api/logout``, ``GET /api/session``).

The payloads are the O&M view model's (:mod:`qkdnet.management.om_view`); this module only
serves them. The handlers are ``async`` so that they run on the event loop that owns the
key network.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import AsyncIterator, Callable, Sequence
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST

from qkdnet.errors import ParameterError, ScenarioError
from qkdnet.live.om_access import OPERATOR_KEY
from qkdnet.live.reports import LiveReports, Updates
from qkdnet.management.alarms import AlarmEngine
from qkdnet.management.kme_counts import KmeCounts
from qkdnet.management.metrics import exposition
from qkdnet.management.nms import Nms
from qkdnet.management.om_view import OmView
from qkdnet.management.service_metrics import service_exposition
from qkdnet.management.services import ServiceView
from qkdnet.quantum.ground_track import satellite_now, scenario_time_s
from qkdnet.quantum.orbit import GroundStation, Orbit
from qkdnet.topology.basemap import basemap_text
from qkdnet.topology.model import NodeKind
from qkdnet.twin.satellite_passes import JINAN_1, TWIN_EPOCH, TwinSatellite, orbit_of

#: The console's static files and their media types; nothing else is served from the folder.
CONSOLE_FILES = {"index.html": "text/html; charset=utf-8",
                 "console.js": "text/javascript; charset=utf-8",
                 "console.css": "text/css; charset=utf-8",
                 "services.js": "text/javascript; charset=utf-8",
                 "services.css": "text/css; charset=utf-8",
                 "replay.js": "text/javascript; charset=utf-8"}
#: Seconds between two ``state`` events of ``/api/events`` when nothing is reported.
EVENT_INTERVAL_S = 1.0
#: Least seconds between two ``state`` events, however fast reports come (a fast replay).
EVENT_MIN_GAP_S = 0.1

_LINK_ACTIONS = ("cut", "repair", "blind")
_NODE_ACTIONS = ("stop", "start")


def _console_file(name: str) -> str:
    return (resources.files("qkdnet.live") / "console" / name).read_text(encoding="utf-8")


def _problem(status: int, message: str) -> JSONResponse:
    return JSONResponse({"message": message}, status_code=status)


class _ViewHandlers:
    """The read side and the acknowledgements: the O&M view's payloads over HTTP."""

    def __init__(self, view: OmView, pulse: Updates, live: LiveReports | None,
                 kme: Callable[[], KmeCounts] | None = None) -> None:
        self.view, self.pulse, self.live = view, pulse, live
        self.kme = kme
        self.fault_injection = live is not None

    def routes(self) -> list[tuple[str, str, Callable[..., Any]]]:
        return [("GET", "/metrics", self.metrics), ("GET", "/api/state", self.state),
                ("GET", "/api/alarms", self.alarm_list),
                ("POST", "/api/alarms/{alarm_id}/ack", self.acknowledge),
                ("GET", "/api/topology", self.topology),
                ("GET", "/api/history/{link}", self.history),
                ("GET", "/api/availability", self.availability),
                ("GET", "/api/services", self.services),
                ("GET", "/api/events", self.events)]

    async def metrics(self) -> Response:
        # the services' families come from their own collector, after the NMS's
        services = b"" if self.view.service_view is None else \
            service_exposition(self.view.service_view)
        if self.live is None:
            kme = None if self.kme is None else self.kme()
            return Response(exposition(self.view.nms, alarms=self.view.alarms, kme=kme)
                            + services, media_type=CONTENT_TYPE_LATEST)
        keynet = self.live.keynet
        rounds = keynet.commits
        return Response(exposition(self.view.nms, keynet.expired_held_keys,
                                   keynet.supply.discarded_full_bits,
                                   lambda: (rounds.rounds, rounds.commits),
                                   alarms=self.view.alarms, kme=self.live.kme_counts)
                        + services,
                        media_type=CONTENT_TYPE_LATEST)

    async def state(self) -> JSONResponse:
        return JSONResponse(self.view.nms.snapshot())

    async def alarm_list(self) -> JSONResponse:
        return JSONResponse(self.view.alarm_list())

    async def acknowledge(self, alarm_id: str, request: Request) -> JSONResponse:
        try:
            body = await request.json() if await request.body() else {}
        except ValueError:
            return _problem(400, "the body must be JSON: {\"by\": \"<operator>\"}")
        # behind the gate the acknowledging operator is the one logged in; a replay has none
        by = request.scope.get(OPERATOR_KEY) or (
            body.get("by") if isinstance(body, dict) else None)
        if not isinstance(by, str) or not by.strip():
            return _problem(400, "field 'by': the name of the acknowledging operator")
        try:
            alarm = self.view.acknowledge(alarm_id, time.time(), by.strip())
        except ParameterError as exc:
            return _problem(404 if exc.name == "alarm_id" else 400, str(exc))
        self.pulse.notify()
        return JSONResponse(alarm)

    async def topology(self) -> JSONResponse:
        return JSONResponse(self.view.topology(self.fault_injection))

    async def history(self, link: str) -> JSONResponse:
        try:
            return JSONResponse(self.view.history(link))
        except ParameterError:
            return _problem(404, f"unknown QKD-link {link!r}")

    async def availability(self) -> JSONResponse:
        return JSONResponse(self.view.availability())

    async def services(self) -> JSONResponse:
        return JSONResponse(self.view.services())

    async def events(self, request: Request) -> StreamingResponse:
        return StreamingResponse(self._stream(request), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache",
                                          "X-Accel-Buffering": "no"})

    async def _stream(self, request: Request) -> AsyncIterator[str]:
        yield "retry: 2000\n\n"
        while not await request.is_disconnected():
            seen = self.pulse.generation
            data = json.dumps(self.view.state_event(), allow_nan=False)
            yield f"event: state\ndata: {data}\n\n"
            # at most one event per EVENT_MIN_GAP_S however fast reports come in
            await asyncio.sleep(EVENT_MIN_GAP_S)
            await self.pulse.wait(seen, EVENT_INTERVAL_S - EVENT_MIN_GAP_S)


class _ConsoleHandlers:
    """The console's static files."""

    def routes(self) -> list[tuple[str, str, Callable[..., Any]]]:
        return [("GET", "/", self.index), ("GET", "/console.js", self.script),
                ("GET", "/console.css", self.style), ("GET", "/basemap.geojson", self.basemap),
                ("GET", "/services.js", self.services_script),
                ("GET", "/services.css", self.services_style),
                ("GET", "/replay.js", self.replay_script)]

    async def index(self) -> HTMLResponse:
        return HTMLResponse(_console_file("index.html"))

    async def script(self) -> Response:
        return Response(_console_file("console.js"), media_type=CONSOLE_FILES["console.js"])

    async def style(self) -> Response:
        return Response(_console_file("console.css"), media_type=CONSOLE_FILES["console.css"])

    async def basemap(self) -> Response:
        """The geography under the map (:mod:`qkdnet.topology.basemap`), shipped, not fetched."""
        return Response(basemap_text(), media_type="application/geo+json",
                        headers={"Cache-Control": "max-age=86400"})

    async def services_script(self) -> Response:
        return Response(_console_file("services.js"), media_type=CONSOLE_FILES["services.js"])

    async def services_style(self) -> Response:
        return Response(_console_file("services.css"),
                        media_type=CONSOLE_FILES["services.css"])

    async def replay_script(self) -> Response:
        """The replay bar: it does nothing where ``/api/replay`` is not served (live)."""
        return Response(_console_file("replay.js"), media_type=CONSOLE_FILES["replay.js"])


class _FaultHandlers:
    """Fault injection into the live network; 409 without one (a replay)."""

    def __init__(self, live: LiveReports | None) -> None:
        self.live = live

    def routes(self) -> list[tuple[str, str, Callable[..., Any]]]:
        return [("POST", "/api/links/{link}/{action}", self.link_fault),
                ("POST", "/api/nodes/{node}/{action}", self.node_fault),
                ("GET", "/api/faults", self.active_faults)]

    async def active_faults(self) -> JSONResponse:
        """The faults injected now (``qkdnet fault list``): cut and blinded QKD-links,
        stopped nodes."""
        if self.live is None:
            return _no_live_network()
        faults = self.live.keynet.faults
        return JSONResponse({"cut_links": sorted(faults.cut_links),
                             "blinded_links": sorted(faults.blinded_links),
                             "stopped_nodes": sorted(faults.stopped_nodes)})

    async def link_fault(self, link: str, action: str) -> JSONResponse:
        if action not in _LINK_ACTIONS:
            return _problem(404, f"unknown action {action!r}: cut, repair or blind")
        if self.live is None:
            return _no_live_network()
        keynet = self.live.keynet
        if link not in keynet.network.link:
            return _problem(404, f"unknown QKD-link {link!r}")
        if action == "blind":
            keynet.faults.blind(link)
        else:
            keynet.faults.cut(link, action == "cut")
        self.live.report_now()
        return JSONResponse({"link": link, "up": link not in keynet.faults.down_links(),
                             "blinded": link in keynet.faults.blinded_links})

    async def node_fault(self, node: str, action: str) -> JSONResponse:
        if action not in _NODE_ACTIONS:
            return _problem(404, f"unknown action {action!r}: stop or start")
        if self.live is None:
            return _no_live_network()
        keynet = self.live.keynet
        if node not in keynet.network.node:
            return _problem(404, f"unknown node {node!r}")
        keynet.faults.stop(node, action == "stop")
        self.live.report_now()
        return JSONResponse({"node": node, "running": node not in keynet.faults.stopped_nodes})


class _SatelliteHandlers:
    """Where the satellites are on the network's scenario clock (``clock``: s after
    TWIN_EPOCH), over the network's ground stations."""

    def __init__(self, nms: Nms, orbits: Sequence[Orbit], clock: Callable[[], float],
                 speedup: float) -> None:
        self.orbits, self.clock, self.speedup = tuple(orbits), clock, speedup
        self.stations = [GroundStation(n.id, n.lat, n.lon) for n in nms.network.nodes
                         if n.kind == NodeKind.GROUND_STATION]

    def routes(self) -> list[tuple[str, str, Callable[..., Any]]]:
        return [("GET", "/api/satellite", self.satellites)]

    async def satellites(self, t: str | None = None) -> JSONResponse:
        if t is None:
            at = self.clock()
        else:
            try:
                at = float(t)
            except ValueError:
                at = math.nan
            if not math.isfinite(at):
                return _problem(400, f"query 't': {t!r} is not a number of seconds after "
                                f"{TWIN_EPOCH.isoformat()}")
        try:
            now = [satellite_now(o, self.stations, TWIN_EPOCH, at).as_json()
                   for o in self.orbits]
        except ScenarioError as exc:  # SGP4 fails far from the TLE's epoch
            return _problem(422, str(exc))
        return JSONResponse({"epoch": TWIN_EPOCH.isoformat(), "t": at,
                             "speedup": self.speedup,
                             "stations": [{"id": s.id, "lat": s.lat_deg, "lon": s.lon_deg}
                                          for s in self.stations],
                             "satellites": now})


def _no_live_network() -> JSONResponse:
    return _problem(409, "fault injection needs a live network (qkdnet serve)")


def make_om_app(nms: Nms, alarms: AlarmEngine, updates: Updates | None = None,
                live: LiveReports | None = None, satellites: Sequence[Orbit] | None = None,
                satellite_clock: Callable[[], float] | None = None,
                services: ServiceView | None = None,
                kme: Callable[[], KmeCounts] | None = None) -> FastAPI:
    """The O&M application over ``nms`` and its ``alarms``; ``updates`` wakes its event
    streams (``live``'s own when given). Without ``live`` (a replay of a twin run) fault
    injection answers 409.

    ``satellites``: the orbits ``/api/satellite`` shows (default: the built-in Jinan-1 when
    the network has ground stations); ``satellite_clock`` gives the scenario time they are
    shown at (s after TWIN_EPOCH; a replay's is its simulated time); by default the wall
    clock since the app was made, ``live``'s speedup times faster (1 without ``live``).

    Without ``live``, ``services`` are the services another driver reports to the monitor
    (the NMS of a deployment; a replay has none) and ``kme`` gives the KMEs' counts for
    ``/metrics`` at each scrape."""
    app = FastAPI(title="qkdnet O&M", docs_url=None, redoc_url=None)
    pulse = live.updates if live is not None else updates or Updates()
    if satellites is None:
        grounded = any(n.kind == NodeKind.GROUND_STATION for n in nms.network.nodes)
        satellites = [orbit_of(TwinSatellite(JINAN_1))] if grounded else []
    start, speedup = time.time(), live.speedup if live is not None else 1.0
    clock = satellite_clock or (lambda: scenario_time_s(start, time.time(), speedup))
    # the services the live network reports on (its monitor's); a replay has none
    if live is not None:
        services = live.monitor.services
    groups = (_ViewHandlers(OmView(nms, alarms, services), pulse, live, kme),
              _ConsoleHandlers(), _FaultHandlers(live),
              _SatelliteHandlers(nms, satellites, clock, speedup))
    for group in groups:
        for method, path, endpoint in group.routes():
            app.add_api_route(path, endpoint, methods=[method])
    return app
