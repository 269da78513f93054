"""``qkdnet controller``: the controller service of a deployment
(:mod:`qkdnet.live.controller_service`) on its host and port, with the certificate
``kme:qkdnet-controller`` of the deployment's PKI (made by ``qkdnet up`` with the nodes'),
until cancelled; refused TLS handshakes go to the audit log of its data folder."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qkdnet.files.deployment import Deployment
from qkdnet.live.audit import AuditLog, audit_file
from qkdnet.live.connection_limits import SERVICE_LIMITS
from qkdnet.live.controller_service import ControllerService, make_controller_app
from qkdnet.live.data_folder import open_data_folder
from qkdnet.live.data_lock import FolderLock
from qkdnet.live.handshake_audit import HandshakeRefusals, audited
from qkdnet.live.pki import load_pki
from qkdnet.live.tls_server import make_server, serve_many, server_ssl_context
from qkdnet.topology.service_ids import CONTROLLER_ID


def controller_url(deployment: Deployment) -> str:
    """The base URL of the deployment's controller service."""
    address, port = deployment.controller_address()
    host = f"[{address}]" if ":" in address else address
    return f"https://{host}:{port}"


async def run_controller(deployment: Deployment, pki_folder: Path, folder: Path,
                         listen: str | None = None,
                         ready: Callable[[dict[str, Any]], None] | None = None) -> None:
    """Serve the controller of ``deployment`` until cancelled; its manifest (URL, pid) in
    ``folder``."""
    pki = load_pki(pki_folder)
    open_data_folder(folder)
    lock = FolderLock.acquire(folder)
    try:
        address, port = deployment.controller_address()
        tls = server_ssl_context(pki.kme_cert(CONTROLLER_ID), pki.kme_key(CONTROLLER_ID),
                                 pki.ca_cert)
        refusals = HandshakeRefusals(AuditLog(audit_file(folder)))
        server = make_server(make_controller_app(ControllerService(deployment.network)),
                             listen or address, port, tls, limits=SERVICE_LIMITS,
                             on_handshake_refused=audited(tls, refusals, CONTROLLER_ID))
        manifest = {"controller_url": controller_url(deployment), "pid": os.getpid()}
        (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
        lock.announce("controller")
        if ready is not None:
            ready(manifest)
        try:
            await serve_many([server])
        finally:
            refusals.flush()
    finally:
        (folder / "manifest.json").unlink(missing_ok=True)
        lock.release()
