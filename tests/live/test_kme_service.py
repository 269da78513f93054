"""Acceptance of the KMEs as a user runs them: ``qkdnet serve`` on the CN-QCN scenario in a
subprocess, spoken to over mutual TLS by the two public ETSI GS QKD 014 clients on PyPI
(``etsi-qkd-014-client`` and ``qkdsec``), by our own SAE client (:mod:`qkdnet.apps.sae_client`)
for the forms those clients do not use, and by plain ``httpx`` for bodies no client sends.

One server serves the whole module (``--speedup 0.01``: pools change little during the tests;
``--prefill-bits`` gives every KM-link key at once). The SAEs sit far apart: sae-harbin and
sae-shenzhen are 64 KM-link hops apart, so every key here is relayed hop by hop. The last
test reads the server's logs for the keys handed out by the tests before it.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from etsi_qkd_014_client import QKD014Client
from qkdsec.client import ETSI014Client, KeysContainer
from qkdsec.doctor import run_all

from qkdnet.apps.sae_client import (
    BadRequest,
    Key,
    KmeUnavailable,
    SaeClient,
    Unauthorized,
    tls_context,
)
from qkdnet.live.launch import CA_BUNDLE_VARIABLES, ServeFailed, start_serve
from qkdnet.topology.cn_qcn import build_cn_qcn
from qkdnet.topology.paths import shortest_path

API = "/api/v1/keys"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
CALL_TIMEOUT_S = 30.0

SIZE_NOT_MULTIPLE_OF_8 = "size shall be a multiple of 8"
EXTENSIONS_UNSUPPORTED = "not all extension_mandatory parameters are supported"
KEYS_NOT_FOUND = "one or more keys specified are not found on KME"

# Three nodes in a chain whose second QKD-link loses 80 dB: its modelled key rate is 0.
DRY_LINK_SCENARIO = """\
qkdnet_scenario: 1
name: dry-link
nodes:
  - {id: a, kind: backbone_access, lat: 40.0, lon: 116.0}
  - {id: b, kind: backbone_access, lat: 40.3, lon: 116.3}
  - {id: c, kind: backbone_access, lat: 40.6, lon: 116.6}
qkd_links:
  - {a: a, b: b, length_km: 50, device_type: I}
  - {a: b, b: c, length_km: 50, loss_db: 80, device_type: I}
saes:
  - {id: sae-a, node: a}
  - {id: sae-c, node: c}
"""


# --- the server ---------------------------------------------------------------------------

@contextmanager
def serving(folder: Path, scenario: str, *options: str) -> Iterator[dict[str, Any]]:
    """Run ``qkdnet serve`` on ``folder`` (logs in serve.out and serve.err there) and yield
    its manifest; SIGTERM at the end."""
    try:
        served = start_serve(folder, scenario, options, timeout_s=START_TIMEOUT_S)
    except ServeFailed as exc:
        pytest.fail(str(exc))
    try:
        yield served.manifest
    finally:
        served.stop(STOP_TIMEOUT_S)


@pytest.fixture(scope="module")
def serve_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cn-qcn-serve")


@pytest.fixture(scope="module")
def manifest(serve_dir: Path) -> Iterator[dict[str, Any]]:
    """The CN-QCN KMEs, served for the whole module."""
    with serving(serve_dir, "cn-qcn", "--prefill-bits", "300000", "--speedup", "0.01") as m:
        yield m


@pytest.fixture(scope="module")
def delivered() -> list[bytes]:
    """Every key the tests were handed, for the log check at the end."""
    return []


@pytest.fixture(autouse=True)
def _no_ca_bundle(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in CA_BUNDLE_VARIABLES:
        monkeypatch.delenv(name, raising=False)


# --- SAEs -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Sae:
    """An SAE with its certificate, calling the KME at ``url``."""

    id: str
    url: str
    cert: str
    key: str
    ca: str

    def at(self, url: str) -> Sae:
        """The same SAE calling another KME."""
        return replace(self, url=url)

    def client(self) -> SaeClient:
        """Our SAE client (keep-alive, mutual TLS)."""
        return SaeClient(self.url, self.cert, self.key, self.ca, timeout_s=CALL_TIMEOUT_S)

    def send_raw(self, path: str, data: str | None = None) -> httpx.Response:
        """GET ``path`` or POST ``data`` as it is, with no Content-Type: what no client
        library sends."""
        with httpx.Client(verify=tls_context(self.cert, self.key, self.ca), trust_env=False,
                          timeout=CALL_TIMEOUT_S) as http:
            if data is None:
                return http.get(self.url + path)
            return http.post(f"{self.url}{API}/{path}", content=data.encode())

    def etsi_client(self) -> QKD014Client:
        """etsi-qkd-014-client, which wants "host:port"."""
        return QKD014Client(self.url.removeprefix("https://"), self.cert, self.key, self.ca)

    def qkdsec_client(self) -> ETSI014Client:
        return ETSI014Client(self.url, client_cert=(self.cert, self.key), verify=self.ca)


def sae(manifest: dict[str, Any], sae_id: str) -> Sae:
    entry = manifest["saes"][sae_id]
    return Sae(sae_id, entry["kme_url"], entry["cert"], entry["key"], manifest["ca"])


def recorded(keys: list[Key], delivered: list[bytes]) -> dict[str, bytes]:
    """key_ID → key bytes (recorded in ``delivered``)."""
    delivered.extend(k.material for k in keys)
    return {k.key_id: k.material for k in keys}


def refused(status: int, message: str | None = None) -> AbstractContextManager[Any]:
    """A context that expects the KME's ``status`` with an Error message (exactly
    ``message`` if given)."""
    kind = {400: BadRequest, 401: Unauthorized, 503: KmeUnavailable}[status]
    return pytest.raises(kind, match=f"^KME refused \\({status}\\): "
                         + (re.escape(message) + "$" if message else ".+"))


@pytest.fixture(scope="module")
def harbin(manifest: dict[str, Any]) -> Sae:
    return sae(manifest, "sae-harbin")


@pytest.fixture(scope="module")
def shenzhen(manifest: dict[str, Any]) -> Sae:
    return sae(manifest, "sae-shenzhen")


def enc_keys(master: Sae, slave: Sae, delivered: list[bytes], number: int = 1
             ) -> dict[str, bytes]:
    """Keys for ``slave`` from the master's KME (POST)."""
    with master.client() as kme:
        return recorded(kme.enc_keys(slave.id, number, 256), delivered)


def dec_keys(slave: Sae, master: Sae, ids: list[str], delivered: list[bytes]
             ) -> dict[str, bytes]:
    """The keys ``ids`` from the slave's KME (POST)."""
    with slave.client() as kme:
        return recorded(kme.dec_keys(master.id, ids), delivered)


# --- 1, 2: the two public clients, in both roles ------------------------------------------

def test_etsi_client_as_master_gets_status_and_keys(harbin: Sae, delivered: list[bytes]
                                                    ) -> None:
    """etsi-qkd-014-client reads a full Status with stored key, and gets three 256-bit keys."""
    client = harbin.etsi_client()
    code, status = client.get_status("sae-shenzhen")
    assert code == 200
    assert (status.source_kme_id, status.target_kme_id) == ("harbin", "shenzhen")
    assert (status.master_sae_id, status.slave_sae_id) == ("sae-harbin", "sae-shenzhen")
    assert status.stored_key_count > 0
    with harbin.client() as kme:  # our client checks that all 11 Status fields are there
        assert kme.status("sae-shenzhen").stored_key_count > 0
    code, container = client.get_key("sae-shenzhen", number=3, size=256)
    assert code == 200 and len(container.keys) == 3
    for key in container.keys:
        assert str(uuid.UUID(key.key_id)) == key.key_id
        material = base64.b64decode(key.key, validate=True)
        assert len(material) == 32
        delivered.append(material)
    assert len({k.key_id for k in container.keys}) == 3


def test_far_slave_gets_the_same_keys_with_qkdsec(harbin: Sae, shenzhen: Sae,
                                                  delivered: list[bytes]) -> None:
    """Keys the master got from harbin's KME (etsi client, POST enc_keys) are the bytes the
    slave gets from shenzhen's KME, hops away (qkdsec, POST dec_keys)."""
    hops = len(shortest_path(build_cn_qcn(), "harbin", "shenzhen", weight="hops")) - 1
    assert hops >= 3
    code, container = harbin.etsi_client().get_key("sae-shenzhen", number=2, size=256)
    assert code == 200
    sent = {k.key_id: base64.b64decode(k.key) for k in container.keys}
    delivered.extend(sent.values())
    got = shenzhen.qkdsec_client().get_dec_keys("sae-harbin", key_ids=list(sent))
    assert {k.key_id: k.key for k in got} == sent


def test_reverse_roles_qkdsec_master_etsi_slave_and_get_dec_keys(
        harbin: Sae, shenzhen: Sae, delivered: list[bytes]) -> None:
    """shenzhen as master with qkdsec (GET enc_keys), harbin as slave with the etsi client
    (POST dec_keys) and with our client's GET dec_keys?key_ID=: the same bytes each way."""
    first, second = shenzhen.qkdsec_client().get_enc_keys("sae-harbin", number=2, size=256)
    delivered.extend((first.key, second.key))
    code, container = harbin.etsi_client().get_key_with_key_IDs("sae-shenzhen", [first.key_id])
    assert code == 200
    assert [(k.key_id, base64.b64decode(k.key)) for k in container.keys] == \
        [(first.key_id, first.key)]
    with harbin.client() as kme:
        got = kme.dec_keys("sae-shenzhen", [second.key_id], method="GET")
    assert recorded(got, delivered) == {second.key_id: second.key}


# --- 3: who may take a key -----------------------------------------------------------------

def test_a_third_sae_is_refused_and_takes_nothing(manifest: dict[str, Any], harbin: Sae,
                                                   shenzhen: Sae, delivered: list[bytes]
                                                   ) -> None:
    """sae-beijing, at its own KME, gets 401 with a message for keys made for sae-shenzhen,
    and sae-shenzhen still gets them afterwards."""
    sent = enc_keys(harbin, shenzhen, delivered, number=2)
    with sae(manifest, "sae-beijing").client() as intruder, refused(401):
        intruder.dec_keys("sae-harbin", list(sent))
    assert dec_keys(shenzhen, harbin, list(sent), delivered) == sent


def test_an_sae_is_refused_at_a_kme_it_is_not_attached_to(
        manifest: dict[str, Any], harbin: Sae, shenzhen: Sae, delivered: list[bytes]) -> None:
    """sae-beijing calling shenzhen's KME gets 401 with a message; the keys stay for the
    slave."""
    sent = enc_keys(harbin, shenzhen, delivered)
    with sae(manifest, "sae-beijing").at(shenzhen.url).client() as intruder:
        with refused(401):
            intruder.dec_keys("sae-harbin", list(sent))
        with refused(401):
            intruder.status("sae-harbin")
    assert dec_keys(shenzhen, harbin, list(sent), delivered) == sent


# --- 4, 5: malformed requests, and each key once ------------------------------------------

MALFORMED: dict[str, tuple[str, dict[str, Any], str | None]] = {
    "size-not-multiple-of-8": ("enc_keys", {"number": 1, "size": 257}, SIZE_NOT_MULTIPLE_OF_8),
    "number-0": ("enc_keys", {"number": 0, "size": 256}, None),
    "number-too-many": ("enc_keys", {"number": 100_000, "size": 256}, None),
    "extension-mandatory": ("enc_keys",
                            {"number": 1, "extension_mandatory": [{"qkdnet_test": 1}]},
                            EXTENSIONS_UNSUPPORTED),
    "key-id-not-uuid": ("dec_keys", {"key_ids": ["not-a-uuid"]}, None),
    "key-id-unknown": ("dec_keys", {"key_ids": [str(uuid.uuid4())]}, KEYS_NOT_FOUND),
}


@pytest.mark.parametrize("case", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_requests_get_400_with_a_message(
        case: tuple[str, dict[str, Any], str | None], harbin: Sae, shenzhen: Sae) -> None:
    """Each malformed Get key / Get key with key IDs (POST) gets 400 and an Error body."""
    call, arguments, message = case
    caller, peer = (harbin, shenzhen) if call == "enc_keys" else (shenzhen, harbin)
    with caller.client() as kme, refused(400, message):
        getattr(kme, call)(peer.id, **arguments)


@pytest.mark.parametrize("call", ["enc_keys", "dec_keys"])
def test_a_body_that_is_not_json_gets_400_with_a_message(call: str, harbin: Sae,
                                                         shenzhen: Sae) -> None:
    """A POST body that is not JSON gets 400 and an Error body."""
    caller, peer = (harbin, shenzhen) if call == "enc_keys" else (shenzhen, harbin)
    reply = caller.send_raw(f"{peer.id}/{call}", "{number: 1" if call == "enc_keys"
                            else "key_IDs=1")
    assert reply.status_code == 400, reply.text
    assert isinstance(reply.json()["message"], str) and reply.json()["message"]


def test_wrong_size_in_the_query_gets_400(harbin: Sae) -> None:
    """GET enc_keys?size=100 (not a multiple of 8) gets the standard's 400."""
    with harbin.client() as kme, refused(400, SIZE_NOT_MULTIPLE_OF_8):
        kme.enc_keys("sae-shenzhen", 1, 100, method="GET")


def test_json_body_without_content_type_is_accepted(harbin: Sae, shenzhen: Sae,
                                                    delivered: list[bytes]) -> None:
    """POSTs with a JSON body and no Content-Type (as C clients send) are served."""
    reply = harbin.send_raw("sae-shenzhen/enc_keys", json.dumps({"number": 1, "size": 256}))
    assert "Content-Type" not in reply.request.headers
    assert reply.status_code == 200, reply.text
    sent = {k["key_ID"]: base64.b64decode(k["key"]) for k in reply.json()["keys"]}
    delivered.extend(sent.values())
    body = {"key_IDs": [{"key_ID": i} for i in sent]}
    reply = shenzhen.send_raw("sae-harbin/dec_keys", json.dumps(body))
    assert "Content-Type" not in reply.request.headers
    assert reply.status_code == 200, reply.text
    assert {k["key_ID"]: base64.b64decode(k["key"]) for k in reply.json()["keys"]} == sent


def test_a_key_is_delivered_to_the_slave_once(harbin: Sae, shenzhen: Sae,
                                              delivered: list[bytes]) -> None:
    """A second dec_keys for a key already taken gets 400 "not found" (POST and GET)."""
    sent = enc_keys(harbin, shenzhen, delivered)
    assert dec_keys(shenzhen, harbin, list(sent), delivered) == sent
    with shenzhen.client() as kme:
        with refused(400, KEYS_NOT_FOUND):
            kme.dec_keys("sae-harbin", list(sent))
        with refused(400, KEYS_NOT_FOUND):
            kme.dec_keys("sae-harbin", list(sent), method="GET")


# --- 7: an empty pool ----------------------------------------------------------------------

def test_an_empty_pool_gives_503_and_a_zero_count(tmp_path: Path) -> None:
    """Across a KM-link whose QKD-link makes no key: Status counts 0 keys and Get key is 503
    with a message."""
    scenario = tmp_path / "dry-link.yaml"
    scenario.write_text(DRY_LINK_SCENARIO, encoding="utf-8")
    with serving(tmp_path, str(scenario), "--prefill-bits", "0") as dry, \
            sae(dry, "sae-a").client() as master:
        assert master.status("sae-c").stored_key_count == 0
        with refused(503):
            master.enc_keys("sae-c", 1, 256)


# --- 9, 10: the API description and qkdsec's conformance probe ----------------------------

def test_openapi_lists_the_three_calls_with_get_and_post(harbin: Sae) -> None:
    """/openapi.json has Get status (GET), Get key and Get key with key IDs (GET and POST)."""
    reply = harbin.send_raw("/openapi.json")
    assert reply.status_code == 200, reply.text
    paths = reply.json()["paths"]
    methods = {path.rsplit("/", 1)[1]: set(operations) for path, operations in paths.items()
               if path.startswith(f"{API}/")}
    assert methods == {"status": {"get"}, "enc_keys": {"get", "post"},
                       "dec_keys": {"get", "post"}}
    assert f"{API}/{{slave_SAE_ID}}/enc_keys" in paths
    assert f"{API}/{{master_SAE_ID}}/dec_keys" in paths


class SaePair(ETSI014Client):
    """The master SAE's qkdsec client for the doctor, with dec_keys asked by the slave SAE at
    its own KME: the doctor assumes one SAE plays both roles at one KME, while here the
    keys are held at the slave's KME, 64 hops away. Records the keys it sees."""

    def __init__(self, master: Sae, slave: Sae, delivered: list[bytes]) -> None:
        super().__init__(master.url, client_cert=(master.cert, master.key), verify=master.ca)
        self.master_id = master.id
        self.slave = slave.qkdsec_client()
        self.delivered = delivered

    def get_enc_keys_container(self, slave_sae_id: str, **options: Any) -> KeysContainer:
        container = super().get_enc_keys_container(slave_sae_id, **options)
        self.delivered.extend(k.key for k in container)
        return container

    def get_dec_keys_container(self, slave_sae_id: str, **options: Any) -> KeysContainer:
        return self.slave.get_dec_keys_container(self.master_id, **options)


def test_qkdsec_doctor_finds_no_failure(harbin: Sae, shenzhen: Sae,
                                        delivered: list[bytes]) -> None:
    """qkdsec's conformance battery, sae-harbin → sae-shenzhen: no probe fails."""
    report = run_all(SaePair(harbin, shenzhen, delivered), "sae-shenzhen")
    outcome = {r.name: r.status.value for r in report.results}
    assert report.passed, json.dumps(report.to_dict(), indent=1)
    # The one WARN: error_contract_404. qkdsec expects 404 for an unknown key_ID; ETSI GS QKD
    # 014 answers 400 "one or more keys specified are not found on KME".
    assert {n for n, s in outcome.items() if s == "warn"} == {"error_contract_404"}, outcome
    assert outcome["dec_keys_roundtrip"] == "pass"


# --- 8: last, the logs ---------------------------------------------------------------------

def test_no_key_appears_in_the_logs(serve_dir: Path, harbin: Sae, shenzhen: Sae,
                                    delivered: list[bytes]) -> None:
    """Runs last: no key handed out above is in the server's stdout or stderr, neither in
    base64 nor in hex; the server did log, at INFO too (a Get key the route cannot serve)."""
    if not delivered:
        pytest.skip("the tests above collect the keys to look for: run the whole module")
    # 60 keys of 8192 bits need 1,921 units a hop: what a pool end may hold (2,048), but
    # more than the prefill gave any KM-link
    with harbin.client() as kme, refused(503):
        kme.enc_keys("sae-shenzhen", 60, 8192)
    out, err = ((serve_dir / name).read_text() for name in ("serve.out", "serve.err"))
    assert "KMEs serving" in out
    assert " INFO qkdnet.keys: " in err
    for key in delivered:
        for text in (base64.b64encode(key).decode(), key.hex(), key.hex().upper()):
            assert text not in out + err
