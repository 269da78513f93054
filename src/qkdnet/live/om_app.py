"""The O&M endpoints of ``qkdnet serve``: the NMS's view of the running network, over plain
HTTP on its own port (``om_url`` in the manifest). No key material ever reaches the NMS.

- ``GET /metrics``: Prometheus exposition format (``qkdnet_link_skr_bits_per_second``…);
- ``GET /api/state``: the latest state of every element as JSON;
- ``GET /api/alarms``: active alarms and the history, from the NMS's rules;
- ``POST /api/links/{link}/cut`` and ``/repair``: fault injection for operators and tests;
  the link stops making key, its KM-links report down, the control layer routes around it,
  the NMS raises the link-down alarm at its next report and clears it after the repair.

The handlers are ``async`` so that they run on the event loop that owns the key network.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any

import numpy as np
from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from qkdnet.control.link_state import KMLinkState
from qkdnet.keys.emulator import link_rate_bps
from qkdnet.live.keynet import KeyNetwork
from qkdnet.management.alarms import Alarm, AlarmEngine
from qkdnet.management.metrics import exposition
from qkdnet.management.nms import Nms
from qkdnet.management.telemetry import KMLinkTelemetry, LinkTelemetry
from qkdnet.topology.model import Network


class LiveTelemetry:
    """Turns what the live KMs know into NMS records: each QKD-link's modelled SKR (bit/s,
    times the serve speed-up) and QBER (its intrinsic error rate; not measured for CV
    links), and each supplied KM-link's pooled key and refill."""

    def __init__(self, network: Network, speedup: float) -> None:
        self.ids = tuple(lk.id for lk in network.qkd_links)
        self.skr = np.array([link_rate_bps(lk) * speedup for lk in network.qkd_links])
        self.qber = np.array([lk.field.get("e_d", math.nan) for lk in network.qkd_links])

    def batches(self, t: float, states: list[KMLinkState], cut: Collection[str] = ()
                ) -> tuple[LinkTelemetry, KMLinkTelemetry]:
        """The records of one report at ``t`` (s); ``cut`` QKD-links are down."""
        n = len(self.ids)
        up = np.array([i not in cut for i in self.ids], dtype=bool)
        links = LinkTelemetry(t, self.ids, np.where(up, self.skr, 0.0),
                              np.where(up, self.qber, np.nan), up, np.zeros(n, dtype=bool))
        kms = KMLinkTelemetry(t, tuple(s.km_link for s in states),
                              np.array([s.key_bits for s in states], dtype=float),
                              np.array([s.rate_bps for s in states], dtype=float),
                              np.array([s.up for s in states], dtype=bool))
        return links, kms


def observe(alarms: AlarmEngine, links: LinkTelemetry, kms: KMLinkTelemetry) -> None:
    """Run the alarm rules over one report."""
    alarms.observe_many(links.t, "qkd_link", links.ids, {
        "skr_bps": links.skr_bps, "qber": links.qber, "up": links.up * 1.0,
        "detector_current_alarm": links.detector_current_alarm * 1.0})
    alarms.observe_many(kms.t, "km_link", kms.ids, {"key_bits": kms.key_bits,
                                                    "up": kms.up * 1.0})


def _alarm(a: Alarm) -> dict[str, Any]:
    return {"id": a.id, "rule": a.rule, "severity": a.severity.name.lower(),
            "subject": a.subject, "text": a.text, "raised_at": a.raised_at,
            "cleared_at": a.cleared_at, "acknowledged_at": a.acknowledged_at,
            "acknowledged_by": a.acknowledged_by}


def make_om_app(nms: Nms, alarms: AlarmEngine, keynet: KeyNetwork) -> FastAPI:
    """The O&M application over ``nms``, its ``alarms`` and the ``keynet`` it watches."""
    app = FastAPI(title="qkdnet O&M", docs_url=None, redoc_url=None)

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(exposition(nms), media_type=CONTENT_TYPE_LATEST)

    @app.get("/api/state")
    async def state() -> JSONResponse:
        snapshot: dict[str, Any] = nms.snapshot()
        return JSONResponse(snapshot)

    @app.get("/api/alarms")
    async def alarm_list() -> JSONResponse:
        return JSONResponse({"active": [_alarm(a) for a in alarms.active()],
                             "history": [_alarm(a) for a in alarms.history()]})

    @app.post("/api/links/{link}/{action}")
    async def fault(link: str, action: str) -> JSONResponse:
        if action not in ("cut", "repair"):
            return JSONResponse({"message": f"unknown action {action!r}: cut or repair"},
                                status_code=404)
        if link not in keynet.network.link:
            return JSONResponse({"message": f"unknown QKD-link {link!r}"}, status_code=404)
        keynet.cut(link, action == "cut")
        return JSONResponse({"link": link, "up": link not in keynet.cut_links})

    return app
