"""``qkdnet nms``: the NMS of a deployment as a service. It takes the EMSs' batches over
mutual TLS on the deployment's ``nms.ems_port`` (:mod:`qkdnet.live.nms_service`, the
certificate ``kme:qkdnet-nms``), reports the network to the management layer every second,
and serves the O&M console, ``/api/...`` and ``/metrics`` on ``nms.port`` as ``qkdnet
serve``'s O&M port does: the same app (:func:`~qkdnet.live.om_app.make_om_app`) behind the
same gate (:class:`~qkdnet.live.om_access.OmGate`, operators from ``qkdnet operator add
... --dir FOLDER``), plain HTTP on loopback, HTTPS with the NMS certificate elsewhere.

Fault injection is not offered (``/api/links/...`` and ``/api/nodes/...`` answer 409): it
acts on a key network in the same process; on a deployment, faults are real (stop a node
process, cut a link between hosts).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qkdnet.files.deployment import Deployment
from qkdnet.live.connection_limits import SERVICE_LIMITS
from qkdnet.live.data_folder import open_data_folder
from qkdnet.live.data_lock import FolderLock
from qkdnet.live.ems_process import service_url
from qkdnet.live.handshake_audit import HandshakeRefusals, audited
from qkdnet.live.nms_service import NmsService, NmsState, make_nms_intake
from qkdnet.live.om_access import OmGate, OperatorAccess, is_loopback, served_names
from qkdnet.live.om_app import make_om_app
from qkdnet.live.pki import load_pki
from qkdnet.live.reports import Updates
from qkdnet.live.serve import OM_LIMITS
from qkdnet.live.step_guard import StepGuard
from qkdnet.live.tls_server import make_server, om_ssl_context, serve_many, server_ssl_context
from qkdnet.management.monitor import NetworkMonitor
from qkdnet.topology.service_ids import NMS_ID

#: How often the NMS reports the network to the management layer (s).
REPORT_INTERVAL_S = 1.0

log = logging.getLogger("qkdnet.management")


async def run_nms(deployment: Deployment, pki_folder: Path, folder: Path,
                  listen: str | None = None,
                  ready: Callable[[dict[str, Any]], None] | None = None) -> None:
    """Serve the NMS of ``deployment`` until cancelled; its manifest (``om_url``, the
    intake URL, pid) in ``folder``, which holds its operator accounts and audit log."""
    pki = load_pki(pki_folder)
    open_data_folder(folder)
    lock = FolderLock.acquire(folder)
    try:
        address, port = deployment.nms_address()
        _, intake_port = deployment.nms_intake_address()
        host = listen or address
        updates = Updates()
        monitor = NetworkMonitor(deployment.network)
        state = NmsState(monitor, updates)
        intake_tls = server_ssl_context(pki.kme_cert(NMS_ID), pki.kme_key(NMS_ID), pki.ca_cert)
        access = OperatorAccess(folder)
        refusals = HandshakeRefusals(access.audit)  # the O&M's audit log: one per folder
        intake = make_server(make_nms_intake(NmsService(state, (e.region for e in
                                                                 deployment.ems))),
                             host, intake_port, intake_tls, limits=SERVICE_LIMITS,
                             on_handshake_refused=audited(intake_tls, refusals, NMS_ID))
        if not access.operators.list():
            log.warning("no O&M operators in %s: every O&M call but the console page and "
                        "/metrics (on loopback) answers 401; add one with `qkdnet operator "
                        "add NAME --role admin --dir %s`", access.operators.path, folder)
        om_app = OmGate(make_om_app(monitor.nms, monitor.alarms, updates,
                                    satellite_clock=state.satellite_clock,
                                    services=monitor.services, kme=state.kme_counts),
                        served_names(host, address), access)
        om_tls = None if is_loopback(host) else om_ssl_context(pki.kme_cert(NMS_ID),
                                                               pki.kme_key(NMS_ID))
        om = make_server(om_app, host, port, om_tls, limits=OM_LIMITS)
        scheme = "https" if om_tls is not None else "http"
        om_url = f"{scheme}://{_authority(address, port)}"
        manifest = {"om_url": om_url,
                    "nms_url": service_url(address, intake_port), "pid": os.getpid()}
        (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
        lock.announce(om_url)
        reporter = asyncio.create_task(_report(state))
        if ready is not None:
            ready(manifest)
        try:
            await serve_many([intake, om])
        finally:
            refusals.flush()
            reporter.cancel()
            await asyncio.gather(reporter, return_exceptions=True)
    finally:
        (folder / "manifest.json").unlink(missing_ok=True)
        lock.release()


def _authority(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


async def _report(state: NmsState) -> None:
    """Report the network to the management layer every REPORT_INTERVAL_S; a failing
    report is logged once while it repeats."""
    reporting = StepGuard("report to the management layer")
    while True:
        await asyncio.sleep(REPORT_INTERVAL_S)
        reporting.run(state.report)
