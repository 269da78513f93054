"""The bound on audit lines for refused TLS handshakes: per address and in all per window,
the rest counted in summary lines when the window ends (a real audit file, a test clock);
and the services of a deployment (controller, NMS) audit theirs like the KMEs."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
from pathlib import Path
from typing import Any

import pytest
from node_deployment import chain_deployment

from qkdnet.files.deployment import load_deployment
from qkdnet.live.audit import AuditLog, audit_file
from qkdnet.live.controller_process import run_controller
from qkdnet.live.handshake_audit import (
    EVENT,
    LINES_PER_ADDRESS,
    LINES_PER_WINDOW,
    OTHERS,
    SUMMARY_ADDRESSES,
    WINDOW_S,
    HandshakeRefusals,
)
from qkdnet.live.nms_process import run_nms
from qkdnet.live.node_processes import deployment_pki
from qkdnet.live.pki import init_pki
from qkdnet.topology.service_ids import CONTROLLER_ID, NMS_ID


class Clock:
    """A clock the test moves (s)."""

    t = 1000.0

    def __call__(self) -> float:
        return self.t


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_one_address_gets_a_few_lines_and_a_summary_at_the_window_end(tmp_path: Path) -> None:
    """100 refusals from one address: LINES_PER_ADDRESS lines, then one 'more' line with
    the rest when the next window starts; the new window writes again."""
    clock = Clock()
    refusals = HandshakeRefusals(AuditLog(tmp_path / "audit.log"), clock)
    for port in range(100):
        refusals.refused("a", ("10.0.0.9", port), "certificate has expired", None)
    assert len(_lines(tmp_path / "audit.log")) == LINES_PER_ADDRESS
    clock.t += WINDOW_S
    refusals.refused("a", ("10.0.0.9", 7), "PEER_DID_NOT_RETURN_A_CERTIFICATE", None)
    lines = _lines(tmp_path / "audit.log")
    assert len(lines) == LINES_PER_ADDRESS + 2
    summary, fresh = lines[-2:]
    assert summary["from"] == "10.0.0.9" and summary["more"] == 100 - LINES_PER_ADDRESS
    assert fresh["from"] == "10.0.0.9:7" and fresh["kme"] == "a"
    assert all(line["event"] == "tls-handshake-refused" for line in lines)


def test_a_flood_from_many_addresses_adds_a_bounded_number_of_lines(tmp_path: Path) -> None:
    """10,000 refusals from 5,000 addresses in one window: at most LINES_PER_WINDOW lines,
    then SUMMARY_ADDRESSES summaries and one for the other addresses; nothing uncounted."""
    clock = Clock()
    refusals = HandshakeRefusals(AuditLog(tmp_path / "audit.log"), clock)
    for i in range(10_000):
        refusals.refused("b", (f"10.1.{i % 5000 // 250}.{i % 250}", 443), "x", None)
    refusals.flush()
    lines = _lines(tmp_path / "audit.log")
    singles = [a for a in lines if "more" not in a]
    summaries = [a for a in lines if "more" in a]
    assert len(singles) == LINES_PER_WINDOW
    assert len(summaries) == SUMMARY_ADDRESSES + 1
    assert summaries[-1]["from"] == OTHERS
    assert len(singles) + sum(a["more"] for a in summaries) == 10_000


@pytest.mark.parametrize("service", ["controller", "nms"])
def test_the_controller_and_the_nms_audit_refused_handshakes(tmp_path: Path,
                                                             service: str) -> None:
    """A client with no certificate, and one with a certificate of another CA, at the
    controller service's and the NMS intake's mutual-TLS listeners: one
    tls-handshake-refused line each in the service's audit log, naming the service and the
    client's address."""
    deployment = load_deployment(chain_deployment(tmp_path))
    pki = deployment_pki(deployment, tmp_path / "base")
    stranger = init_pki(tmp_path / "other-ca", ["a"], [])
    folder = tmp_path / service

    async def run() -> None:
        manifests: list[dict[str, Any]] = []
        if service == "controller":
            task = asyncio.create_task(run_controller(deployment, pki.folder, folder,
                                                      ready=manifests.append))
            port = deployment.controller_address()[1]
        else:
            task = asyncio.create_task(run_nms(deployment, pki.folder, folder,
                                               ready=manifests.append))
            port = deployment.nms_intake_address()[1]
        while not manifests:
            await asyncio.sleep(0.05)
        for cert in (None, (stranger.kme_cert("a"), stranger.kme_key("a"))):
            await asyncio.to_thread(_refused, port, pki.ca_cert, cert)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(run())
    lines = [r for r in _lines(audit_file(folder)) if r["event"] == EVENT]
    named = CONTROLLER_ID if service == "controller" else NMS_ID
    assert [r["kme"] for r in lines] == [named, named]
    assert all(r["from"].startswith("127.0.0.1:") for r in lines)
    assert "certificate" in lines[0]["reason"].lower()
    assert "certificate verify failed" in lines[1]["reason"]


def _refused(port: int, ca: Path, cert: tuple[Path, Path] | None) -> None:
    """A TLS handshake with the listener on ``port`` presenting ``cert`` (None: none); it
    must fail."""
    context = ssl.create_default_context(cafile=str(ca))
    if cert is not None:
        context.load_cert_chain(*cert)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            pytest.raises((ssl.SSLError, ConnectionError)), \
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        tls.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        if not tls.recv(64):  # TLS 1.3: the server's refusal shows on the first read
            raise ConnectionError("closed")
