"""The KME parses a client certificate once per TLS connection, not once per request, and
still checks revocation on every request."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from cryptography import x509

from qkdnet.files.networks import load_network
from qkdnet.live import kme_app
from qkdnet.live.keynet import KeyNetwork, served_nodes
from qkdnet.live.pki import Pki, init_pki
from qkdnet.live.tls_server import TlsServer, make_server, serve_many, server_ssl_context, stop

TIMEOUT = 10.0
SCENARIO = """\
qkdnet_scenario: 1
name: pair
nodes:
  - {id: a, kind: backbone_access, lat: 30, lon: 110}
  - {id: c, kind: backbone_access, lat: 30.3, lon: 110.3}
qkd_links:
  - {a: a, b: c, length_km: 40, loss_db: 10, device_type: I}
saes:
  - {id: sae-a, node: a}
  - {id: sae-c, node: c}
"""


class Revocations:
    """A RevocationWatch stand-in that counts the checks and revokes on demand."""

    def __init__(self) -> None:
        self.checks = 0
        self.revoked: set[int] = set()

    def is_revoked(self, serial: int) -> bool:
        self.checks += 1
        return serial in self.revoked


@pytest.fixture
def kme(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
        ) -> Iterator[tuple[TlsServer, Pki, list[bytes], Revocations]]:
    """KME ``a`` of a two-node network served over mutual TLS in a thread of its own;
    the certificates it parsed; its revocation checks."""
    path = tmp_path / "pair.yaml"
    path.write_text(SCENARIO)
    network = load_network(path)
    pki = init_pki(tmp_path / "pki", ["a", "c"], ["sae-a", "sae-c"])
    parsed: list[bytes] = []
    real = kme_app.identify_sae

    def counting(der: bytes, *, allow_cn_identity: bool = False) -> str:
        parsed.append(der)
        return real(der, allow_cn_identity=allow_cn_identity)

    monkeypatch.setattr(kme_app, "identify_sae", counting)
    revocations = Revocations()
    servers: list[TlsServer] = []

    async def run() -> None:  # SQLite stores belong to the thread that opened them
        keynet = KeyNetwork(network, tmp_path / "stores", served_nodes(network))
        app = kme_app.make_kme_app(keynet, "a", revocation=revocations)  # type: ignore[arg-type]
        context = server_ssl_context(pki.kme_cert("a"), pki.kme_key("a"), pki.ca_cert)
        servers.append(make_server(app, "127.0.0.1", 0, context))
        try:
            await serve_many(servers)
        finally:
            keynet.close()

    thread = threading.Thread(target=lambda: asyncio.run(run()), daemon=True)
    thread.start()
    deadline = time.monotonic() + TIMEOUT
    while not (servers and servers[0].started):
        assert thread.is_alive() and time.monotonic() < deadline
        time.sleep(0.01)
    try:
        yield servers[0], pki, parsed, revocations
    finally:
        stop(servers)
        thread.join(TIMEOUT)


def _session(pki: Pki) -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    session.cert = (str(pki.sae_cert("sae-a")), str(pki.sae_key("sae-a")))
    session.verify = str(pki.ca_cert)
    return session


def test_the_certificate_is_parsed_once_per_connection(
        kme: tuple[TlsServer, Pki, list[bytes], Revocations]) -> None:
    """Three calls on one kept-alive connection parse it once; a new connection again."""
    server, pki, parsed, revocations = kme
    url = f"https://127.0.0.1:{server.port}/api/v1/keys/sae-c/status"
    with _session(pki) as session:
        for _ in range(3):
            assert session.get(url, timeout=TIMEOUT).status_code == 200
    assert len(parsed) == 1
    assert revocations.checks == 3  # revocation is still checked on every request
    with _session(pki) as session:
        assert session.get(url, timeout=TIMEOUT).status_code == 200
    assert len(parsed) == 2


def test_a_certificate_revoked_mid_connection_is_refused_on_its_next_request(
        kme: tuple[TlsServer, Pki, list[bytes], Revocations]) -> None:
    """The identity is kept per connection, the CRL verdict is not: the next call is 401."""
    server, pki, parsed, revocations = kme
    url = f"https://127.0.0.1:{server.port}/api/v1/keys/sae-c/status"
    with _session(pki) as session:
        assert session.get(url, timeout=TIMEOUT).status_code == 200
        revocations.revoked.add(x509.load_pem_x509_certificate(
            pki.sae_cert("sae-a").read_bytes()).serial_number)
        refused = session.get(url, timeout=TIMEOUT)
    assert refused.status_code == 401
    assert "revoked" in refused.json()["message"]
    assert len(parsed) == 1
