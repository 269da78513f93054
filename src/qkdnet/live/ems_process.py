"""``qkdnet ems``: the EMS of one region of a deployment (:mod:`qkdnet.live.ems_service`)
on its host and port, with the certificate ``kme:qkdnet-ems-<region>`` of the deployment's
PKI (made by ``qkdnet up`` with the nodes'), forwarding to the NMS, until cancelled."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qkdnet.apps.sae_client import tls_context
from qkdnet.files.deployment import Deployment
from qkdnet.live.audit import AuditLog, audit_file
from qkdnet.live.connection_limits import SERVICE_LIMITS
from qkdnet.live.data_folder import open_data_folder
from qkdnet.live.data_lock import FolderLock
from qkdnet.live.ems_service import EmsForwarder, EmsService, make_ems_app
from qkdnet.live.handshake_audit import HandshakeRefusals, audited
from qkdnet.live.nms_service import ems_id
from qkdnet.live.pki import load_pki
from qkdnet.live.tls_server import make_server, serve_many, server_ssl_context


def service_url(address: str, port: int) -> str:
    """``https://address:port`` (an IPv6 literal in brackets)."""
    host = f"[{address}]" if ":" in address else address
    return f"https://{host}:{port}"


async def run_ems(deployment: Deployment, region: str, pki_folder: Path, folder: Path,
                  listen: str | None = None,
                  ready: Callable[[dict[str, Any]], None] | None = None) -> None:
    """Serve the EMS of ``region`` (the caller checked it has one) until cancelled; its
    manifest (URL, pid) in ``folder``."""
    pki = load_pki(pki_folder)
    open_data_folder(folder)
    lock = FolderLock.acquire(folder)
    me = ems_id(region)
    try:
        address, port = deployment.ems_address(region)
        tls = server_ssl_context(pki.kme_cert(me), pki.kme_key(me), pki.ca_cert)
        service = EmsService(deployment.network, region)
        refusals = HandshakeRefusals(AuditLog(audit_file(folder)))
        server = make_server(make_ems_app(service), listen or address, port, tls,
                             limits=SERVICE_LIMITS,
                             on_handshake_refused=audited(tls, refusals, me))
        forwarder = EmsForwarder(service, service_url(*deployment.nms_intake_address()),
                                 tls_context(pki.kme_cert(me), pki.kme_key(me), pki.ca_cert))
        manifest = {"ems_url": service_url(address, port), "region": region,
                    "pid": os.getpid()}
        (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
        lock.announce(f"EMS {region}")
        forwarder.start()
        if ready is not None:
            ready(manifest)
        try:
            await serve_many([server])
        finally:
            refusals.flush()
            await forwarder.close()
    finally:
        (folder / "manifest.json").unlink(missing_ok=True)
        lock.release()
