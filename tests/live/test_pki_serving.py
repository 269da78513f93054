"""Issue 12, item 2 as a user meets it: ``qkdnet serve`` runs on a PKI without the CA key,
takes only proper SAE client certificates, and refuses a revoked SAE within a second.

The PKI is made by ``qkdnet pki init`` in a CA folder and copied to the data folder without
``ca.key``, as an operator deploys it; odd client certificates are issued by the same CA with
``cryptography``. One server (a two-node scenario) serves the module.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from qkdnet.apps.sae_client import tls_context
from qkdnet.live.launch import ServeFailed, ServeProcess, start_serve
from qkdnet.live.revocation import CHECK_EVERY_S
from qkdnet.live.runtime import LOOP_VARIABLE

TIMEOUT_S = 30.0
SCENARIO = """\
qkdnet_scenario: 1
name: pki-pair
nodes:
  - {id: a, kind: backbone_access, lat: 40.0, lon: 116.0}
  - {id: b, kind: backbone_access, lat: 40.3, lon: 116.3}
qkd_links:
  - {a: a, b: b, length_km: 20, device_type: I}
saes:
  - {id: sae-a1, node: a}
  - {id: sae-a2, node: a}
  - {id: sae-b, node: b}
"""
SERVE_OPTIONS = ("--prefill-bits", "300000", "--speedup", "0.01")


@dataclass
class Network:
    """A running server, its scenario file, and the CA folder (with ca.key) it came from."""

    served: ServeProcess
    scenario: Path
    ca: Path
    data: Path
    certs: Path  # extra client certificates made by the tests

    def client(self, cert: Path, key: Path) -> httpx.Client:
        """An HTTP client presenting ``cert`` to the KME of node a."""
        context = tls_context(cert, key, self.data / "pki" / "ca.crt")
        return httpx.Client(verify=context, timeout=TIMEOUT_S)

    def sae(self, sae: str) -> httpx.Client:
        """An HTTP client presenting SAE ``sae``'s certificate as issued by pki init."""
        return self.client(self.ca / "sae" / f"{sae}.crt", self.ca / "sae" / f"{sae}.key")

    def enc_keys_url(self, slave: str = "sae-b") -> str:
        return f"{self.served.kme_url('sae-a1')}/api/v1/keys/{slave}/enc_keys"


def _qkdnet(*args: str) -> str:
    """Run ``python -m qkdnet *args``; its stdout (fails the test on a non-zero exit)."""
    done = subprocess.run([sys.executable, "-m", "qkdnet", *args], capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _serve(data: Path, scenario: Path, *options: str) -> ServeProcess:
    try:
        return start_serve(data, str(scenario), [*SERVE_OPTIONS, *options], timeout_s=60)
    except ServeFailed as exc:
        pytest.fail(str(exc))


def _deploy(ca: Path, data: Path) -> None:
    """Copy the PKI in ``ca`` to ``data/pki`` without the CA key, open to no one else (serve
    refuses a data folder others may read)."""
    data.mkdir(mode=0o700, exist_ok=True)
    shutil.copytree(ca, data / "pki", ignore=shutil.ignore_patterns("ca.key"))
    (data / "pki").chmod(0o700)


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    root = tmp_path_factory.mktemp("pki-serving")
    scenario = root / "pki-pair.yaml"
    scenario.write_text(SCENARIO, encoding="utf-8")
    _qkdnet("pki", "init", str(root / "ca"), "--scenario", str(scenario))
    _deploy(root / "ca", root / "data")
    served = _serve(root / "data", scenario)
    (root / "certs").mkdir()
    try:
        yield Network(served, scenario, root / "ca", root / "data", root / "certs")
    finally:
        served.stop()


def _other_ca() -> tuple[x509.Name, ec.EllipticCurvePrivateKey]:
    """A CA the network does not know: its name and key (its certificate is not needed)."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "some other CA")])
    return name, ec.generate_private_key(ec.SECP256R1())


def _issue(net: Network, name: str, *, cn: str, uris: list[str],
           eku: list[x509.ObjectIdentifier] | None, ca: bool = False,
           expired: bool = False,
           issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None = None
           ) -> tuple[Path, Path]:
    """A client certificate signed by the network's CA (its ca.key in the CA folder), or
    by ``issuer``; ``expired``: valid until yesterday."""
    if issuer is None:
        ca_cert = x509.load_pem_x509_certificate((net.ca / "ca.crt").read_bytes())
        loaded = serialization.load_pem_private_key((net.ca / "ca.key").read_bytes(), None)
        assert isinstance(loaded, ec.EllipticCurvePrivateKey)
        issuer = ca_cert.subject, loaded
    issuer_name, ca_key = issuer
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC) - dt.timedelta(days=2 if expired else 0)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
               .issuer_name(issuer_name).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5))
               .not_valid_after(now + dt.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(
                   digital_signature=True, content_commitment=False, key_encipherment=False,
                   data_encipherment=False, key_agreement=False, key_cert_sign=ca,
                   crl_sign=ca, encipher_only=False, decipher_only=False), critical=True))
    if uris:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.UniformResourceIdentifier(u) for u in uris]), critical=False)
    if eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    crt, pem_key = net.certs / f"{name}.crt", net.certs / f"{name}.key"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem_key.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return crt, pem_key


def _keys(client: httpx.Client, url: str) -> httpx.Response:
    return client.post(url, json={"number": 1, "size": 256})


def test_serve_runs_and_hands_out_keys_without_the_ca_key(net: Network) -> None:
    """The data folder holds no ca.key, yet the KMEs start and give an SAE keys."""
    assert not (net.data / "pki" / "ca.key").exists()
    assert (net.ca / "ca.key").is_file()
    with net.sae("sae-a1") as client:
        reply = _keys(client, net.enc_keys_url())
    assert reply.status_code == 200, reply.text
    assert len(reply.json()["keys"]) == 1


def _raw_reply(net: Network, crt: Path, key: Path) -> bytes:
    """The first bytes the KME of node a answers a status request with, over a bare TLS
    socket presenting ``crt``; b"" when the server closes the connection instead."""
    context = tls_context(crt, key, net.data / "pki" / "ca.crt")
    port = net.served.manifest["kmes"]["a"]["port"]
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S) as raw, \
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        # TLS 1.3: the server checks the client certificate after the client has finished
        # its side of the handshake, so a refusal shows on the first read.
        tls.sendall(b"GET /api/v1/keys/sae-b/status HTTP/1.1\r\nHost: a\r\n\r\n")
        try:
            return tls.recv(64)
        except (ssl.SSLError, ConnectionError):
            return b""


def test_a_certificate_without_client_auth_is_refused_at_the_handshake(net: Network) -> None:
    """EKU serverAuth only: OpenSSL's client-purpose check fails the server's handshake, so
    no HTTP reply at all comes back (the SAE's own certificate gets one on the same path)."""
    crt, key = _issue(net, "server-only", cn="sae-a1", uris=["sae-id:sae-a1"],
                      eku=[ExtendedKeyUsageOID.SERVER_AUTH])
    assert _raw_reply(net, crt, key) == b""
    own = _raw_reply(net, net.ca / "sae" / "sae-a1.crt", net.ca / "sae" / "sae-a1.key")
    assert own.startswith(b"HTTP/1.1 200")


def test_a_certificate_without_any_eku_is_refused_with_401(net: Network) -> None:
    """No EKU extension passes OpenSSL (no EKU = any purpose), so the KME refuses: 401."""
    crt, key = _issue(net, "no-eku", cn="sae-a1", uris=["sae-id:sae-a1"], eku=None)
    with net.client(crt, key) as client:
        reply = _keys(client, net.enc_keys_url())
    assert reply.status_code == 401
    assert "clientAuth" in reply.json()["message"]


def test_a_ca_certificate_as_client_is_refused_with_401(net: Network) -> None:
    """A CA certificate (basicConstraints CA=true) with clientAuth and an SAE URI: 401."""
    crt, key = _issue(net, "ca-client", cn="sae-a1", uris=["sae-id:sae-a1"],
                      eku=[ExtendedKeyUsageOID.CLIENT_AUTH], ca=True)
    with net.client(crt, key) as client:
        reply = _keys(client, net.enc_keys_url())
    assert reply.status_code == 401
    assert "CA certificate" in reply.json()["message"]


def test_a_cn_only_certificate_is_refused_without_the_flag(net: Network) -> None:
    """Subject CN = an SAE ID but no sae-id: URI: 401 naming --allow-cn-identity."""
    crt, key = _issue(net, "cn-only", cn="sae-a1", uris=[],
                      eku=[ExtendedKeyUsageOID.CLIENT_AUTH])
    with net.client(crt, key) as client:
        reply = _keys(client, net.enc_keys_url())
    assert reply.status_code == 401
    assert "--allow-cn-identity" in reply.json()["message"]


def test_a_cn_only_certificate_is_accepted_with_the_flag(net: Network,
                                                          tmp_path: Path) -> None:
    """``serve --allow-cn-identity``: the same CN-only certificate gets keys."""
    crt, key = _issue(net, "cn-only-2", cn="sae-a1", uris=[],
                      eku=[ExtendedKeyUsageOID.CLIENT_AUTH])
    _deploy(net.ca, tmp_path / "data")
    served = _serve(tmp_path / "data", net.scenario, "--allow-cn-identity")
    try:
        context = tls_context(crt, key, tmp_path / "data" / "pki" / "ca.crt")
        with httpx.Client(verify=context, timeout=TIMEOUT_S) as client:
            reply = _keys(client, f"{served.kme_url('sae-a1')}/api/v1/keys/sae-b/enc_keys")
    finally:
        served.stop()
    assert reply.status_code == 200, reply.text


def test_a_revoked_sae_is_refused_soon_and_others_still_served(net: Network) -> None:
    """`pki revoke sae-a2`: within the watch's period its requests, on the same open
    connection, get 401 (and a line in the audit log naming the SAE, the KME and why),
    while sae-a1 still gets keys; no restart."""
    with net.sae("sae-a2") as revoked, net.sae("sae-a1") as other:
        assert _keys(revoked, net.enc_keys_url()).status_code == 200
        out = _qkdnet("pki", "revoke", "sae-a2", "--dir", str(net.ca),
                      "--copy-to", str(net.data / "pki" / "crl.pem"))
        assert "1 revoked" in out
        # the KME looks at the CRL at most every CHECK_EVERY_S: poll Get status (it spends
        # no key) until it refuses, for a bounded time
        status_url = net.enc_keys_url().removesuffix("enc_keys") + "status"
        deadline = time.monotonic() + CHECK_EVERY_S + TIMEOUT_S
        while revoked.get(status_url).status_code == 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        reply = _keys(revoked, net.enc_keys_url())
        assert reply.status_code == 401
        assert reply.json()["message"] == "client certificate is revoked"
        assert _keys(other, net.enc_keys_url()).status_code == 200
    assert net.served.process.poll() is None
    audited = [json.loads(line) for line in
               (net.data / "audit.log").read_text(encoding="utf-8").splitlines()]
    expected = {"event": "kme-refused", "who": "sae-a2", "status": 401,
                "reason": "client certificate is revoked"}
    assert any(expected.items() <= a.items() for a in audited)


def test_serve_without_a_pki_keeps_the_ca_key_beside_the_data_folder(net: Network,
                                                                      tmp_path: Path) -> None:
    """No PKI: serve makes one in DIR-ca, copies it without ca.key and logs where the key
    is; the KME certificates name --host (IP SAN) and --advertise (DNS SAN), so a client
    verifying the host name accepts the KME at 127.0.0.2."""
    data = tmp_path / "fresh"
    served = _serve(data, net.scenario, "--host", "127.0.0.2",
                    "--advertise", "kme-a.example.net")
    try:
        url = served.kme_url("sae-a1")
        (cert, key), ca = served.tls("sae-a1")
        with httpx.Client(verify=tls_context(cert, key, ca), timeout=TIMEOUT_S) as client:
            status = client.get(f"{url}/api/v1/keys/sae-b/status")
    finally:
        served.stop()
    assert url.startswith("https://127.0.0.2:")
    assert status.status_code == 200, status.text
    ca_key = tmp_path / "fresh-ca" / "ca.key"
    assert ca_key.is_file() and not (data / "pki" / "ca.key").exists()
    assert str(ca_key) in served.log()
    san = _san(data / "pki" / "kme" / "a.crt")
    assert "kme-a.example.net" in san.get_values_for_type(x509.DNSName)
    assert ipaddress.IPv4Address("127.0.0.2") in san.get_values_for_type(x509.IPAddress)


def _san(path: Path) -> Any:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value


def _refused_handshake(url_port: int, ca: Path, cert: tuple[Path, Path] | None) -> int:
    """Try a TLS handshake with the KME on ``url_port`` presenting ``cert`` (None: no
    certificate); it must fail. The client's port, which the audit line names."""
    context = ssl.create_default_context(cafile=str(ca))
    if cert is not None:
        context.load_cert_chain(*cert)
    with socket.create_connection(("127.0.0.1", url_port), timeout=TIMEOUT_S,
                                  source_address=("127.0.0.1", 0)) as raw:
        port = int(raw.getsockname()[1])
        with pytest.raises((ssl.SSLError, ConnectionError)), \
                context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            tls.sendall(b"GET /api/v1/keys/sae-b/status HTTP/1.1\r\nHost: a\r\n\r\n")
            if not tls.recv(64):  # TLS 1.3: the server's refusal shows on the first read
                raise ConnectionError("closed")
    return port


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_refused_handshakes_are_audited_and_a_flood_is_summed_up(
        net: Network, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, loop: str) -> None:
    """Another CA, expired, serverAuth only, no certificate: one tls-handshake-refused line
    each (KME, client address:port, OpenSSL's reason); 20 more from the same address add
    one line, and the rest are counted in one summary line when the server stops (on
    uvloop's event loop, serve's default, and on asyncio's)."""
    monkeypatch.setenv(LOOP_VARIABLE, loop)
    eku = [ExtendedKeyUsageOID.CLIENT_AUTH]
    bad = {
        "certificate verify failed": _issue(net, "other-ca", cn="sae-a1",
                                            uris=["sae-id:sae-a1"], eku=eku,
                                            issuer=_other_ca()),
        "certificate has expired": _issue(net, "expired", cn="sae-a1",
                                          uris=["sae-id:sae-a1"], eku=eku, expired=True),
        "unsuitable certificate purpose": _issue(
            net, "server-only-2", cn="sae-a1", uris=["sae-id:sae-a1"],
            eku=[ExtendedKeyUsageOID.SERVER_AUTH]),
        "PEER_DID_NOT_RETURN_A_CERTIFICATE": None,
    }
    data = tmp_path / "data"
    _deploy(net.ca, data)
    served = _serve(data, net.scenario)
    try:
        kme = int(served.manifest["kmes"]["a"]["port"])
        ports = {reason: _refused_handshake(kme, data / "pki" / "ca.crt", cert)
                 for reason, cert in bad.items()}
        for _ in range(20):
            _refused_handshake(kme, data / "pki" / "ca.crt", None)
        with net.sae("sae-a1") as good:  # the KME still serves a proper SAE
            assert _keys(good, f"{served.kme_url('sae-a1')}/api/v1/keys/sae-b/enc_keys"
                         ).status_code == 200
        lines = [json.loads(line) for line in
                 (data / "audit.log").read_text(encoding="utf-8").splitlines()]
        refused = [a for a in lines if a["event"] == "tls-handshake-refused"]
        for reason, port in ports.items():
            [line] = [a for a in refused if a["from"] == f"127.0.0.1:{port}"]
            assert reason in line["reason"] and line["kme"] == "a", line
            # the certificate's SAE where Python can show it after a failed handshake (3.13)
            assert line["who"] in (None, "sae-a1"), line
        assert len(refused) == 5  # per address and window: the 4 and one of the flood
        assert f"event loop: {loop}" in served.log()
        assert served.stop() == 0
    finally:
        served.stop()
    lines = [json.loads(line) for line in
             (data / "audit.log").read_text(encoding="utf-8").splitlines()]
    [summary] = [a for a in lines if a["event"] == "tls-handshake-refused" and "more" in a]
    assert summary["more"] == 19 and summary["from"] == "127.0.0.1", summary
    assert "19 more refused handshakes" in summary["reason"]
