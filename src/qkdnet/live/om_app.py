"""The O&M endpoints of ``qkdnet serve``: the NMS's view of the running network, over plain
HTTP on its own port (``om_url`` in the manifest). No key material ever reaches the NMS.

- ``GET /metrics``: Prometheus exposition format (``qkdnet_link_skr_bits_per_second``…);
- ``GET /api/state``: the latest state of every element as JSON.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from qkdnet.control.link_state import KMLinkState
from qkdnet.keys.emulator import link_rate_bps
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

    def batches(self, t: float, states: list[KMLinkState]
                ) -> tuple[LinkTelemetry, KMLinkTelemetry]:
        """The records of one report at ``t`` (s)."""
        n = len(self.ids)
        links = LinkTelemetry(t, self.ids, self.skr, self.qber, np.ones(n, dtype=bool),
                              np.zeros(n, dtype=bool))
        kms = KMLinkTelemetry(t, tuple(s.km_link for s in states),
                              np.array([s.key_bits for s in states], dtype=float),
                              np.array([s.rate_bps for s in states], dtype=float),
                              np.array([s.up for s in states], dtype=bool))
        return links, kms


def make_om_app(nms: Nms) -> FastAPI:
    """The O&M application over ``nms``."""
    app = FastAPI(title="qkdnet O&M", docs_url=None, redoc_url=None)

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(exposition(nms), media_type=CONTENT_TYPE_LATEST)

    @app.get("/api/state")
    def state() -> JSONResponse:
        snapshot: dict[str, Any] = nms.snapshot()
        return JSONResponse(snapshot)

    return app
