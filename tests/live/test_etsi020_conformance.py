"""ETSI GS QKD 020 conformance: two interop KMS servers on loopback over mutual TLS (PKI
from ``init_pki``, SQLite key stores and ledgers on disk), every endpoint and status code,
both modes, void, replay and tombstones across a restart, malformed bodies, refusals."""

from __future__ import annotations

import asyncio
import base64
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from polling import wait_for

from qkdnet.apps.sae_client import tls_context
from qkdnet.keys.etsi020 import TYPE_BASE, Association, ExtKey, ExtKeys, InteropKms, Void
from qkdnet.keys.store import SQLiteKeyStore
from qkdnet.live.etsi020_app import CallbackPolicy, Etsi020App
from qkdnet.live.etsi020_client import Etsi020Client
from qkdnet.live.etsi020_ledger import SQLiteLedger
from qkdnet.live.pki import Pki, init_pki
from qkdnet.live.tls_server import TlsServer, make_server, server_ssl_context

TIMEOUT = 10.0
T = TypeVar("T")
VALUE = bytes(range(32))


class Node:
    """One interop KMS (``kms-a`` with sae-a, or ``kms-b`` with sae-b) served in the
    harness's loop thread, its store and ledger in ``folder``."""

    def __init__(self, harness: Harness, name: str, sae: str, peer: str) -> None:
        self.harness, self.name, self.sae, self.peer = harness, name, sae, peer
        self.folder = harness.tmp / name
        self.folder.mkdir(exist_ok=True)
        self.released: list[tuple[ExtKey, ExtKeys]] = []
        self.server: TlsServer | None = None

    def start(self) -> None:
        """Open the files and serve (in the loop thread: SQLite belongs to it)."""
        pki = self.harness.pki

        def opened() -> None:
            self.store = SQLiteKeyStore(self.folder / "keys.db", self.name)
            self.ledger = SQLiteLedger(self.folder / "etsi020.db")
            self.kms = InteropKms(self.name, self.store, self.ledger,
                                  lambda sae: sae == self.sae)
            client_ssl = tls_context(pki.kme_cert(self.name), pki.kme_key(self.name),
                                     pki.ca_cert)
            self.app = Etsi020App(self.kms, [self.peer], time.monotonic, client_ssl,
                                  on_released=self.released.extend, body_timeout_s=1.0,
                                  max_body_bytes=2**20,
                                  callbacks=CallbackPolicy(3, 0.05, 0.2, 2.0))
            context = server_ssl_context(pki.kme_cert(self.name), pki.kme_key(self.name),
                                         pki.ca_cert)
            self.server = make_server(self.app, "127.0.0.1", 0, context)
            self.task = asyncio.get_running_loop().create_task(self.server.serve())

        self.harness.run(_sync(opened))
        assert wait_for(lambda: self.server is not None and self.server.started, TIMEOUT)

    def stop(self) -> None:
        """Stop serving and close the files (a restart reopens them)."""
        assert self.server is not None
        self.server.request_stop()

        async def closed() -> None:
            await asyncio.wait_for(self.task, TIMEOUT)
            await self.app.idle()
            self.store.close()
            self.ledger.close()

        self.harness.run(closed())

    @property
    def url(self) -> str:
        """Base URL of the server."""
        assert self.server is not None
        return f"https://127.0.0.1:{self.server.port}"

    def on_loop(self, fn: Callable[[], T]) -> T:
        """``fn()`` run in the loop thread."""
        return self.harness.run(_sync(fn))

    def held(self, key_id: str) -> tuple[str, str] | None:
        """The SAE pair a key is held for here."""
        return self.on_loop(lambda: self.store.held_for(key_id))

    def entry(self, key_id: str) -> Association | None:
        """The ledger's record of a key_id here."""
        return self.on_loop(lambda: self.ledger.get([key_id]).get(key_id))


def _sync(fn: Callable[[], T]) -> Coroutine[Any, Any, T]:
    async def call() -> T:
        return fn()
    return call()


class Harness:
    """A PKI, an event loop in a thread of its own, and nodes ``a`` and ``b``."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.pki: Pki = init_pki(tmp / "pki", ["kms-a", "kms-b", "kms-x"], ["sae-a", "sae-b"])
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.a = Node(self, "kms-a", "sae-a", "kms-b")
        self.b = Node(self, "kms-b", "sae-b", "kms-a")

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` in the loop thread and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(TIMEOUT * 3)

    def http(self, as_kme: str = "kms-a") -> httpx.Client:
        """A client presenting ``as_kme``'s certificate (an SAE's if it is one)."""
        pki = self.pki
        cert, key = ((pki.kme_cert(as_kme), pki.kme_key(as_kme)) if as_kme.startswith("kms")
                     else (pki.sae_cert(as_kme), pki.sae_key(as_kme)))
        return httpx.Client(verify=tls_context(cert, key, pki.ca_cert), timeout=TIMEOUT)

    def client(self) -> Etsi020Client:
        """Node a's client of node b (made in the loop thread)."""
        a, pki = self.a, self.pki
        return a.on_loop(lambda: Etsi020Client(
            a.kms, "kms-b", self.b.url, tls_context(pki.kme_cert("kms-a"),
                                                    pki.kme_key("kms-a"), pki.ca_cert),
            time.monotonic))

    def close(self) -> None:
        for node in (self.a, self.b):
            if node.server is not None and not node.task.done():
                node.stop()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(TIMEOUT)


@pytest.fixture
def net(tmp_path: Path) -> Iterator[Harness]:
    """Interop KMSs kms-a and kms-b, peers of each other, served over mutual TLS."""
    harness = Harness(tmp_path)
    try:
        harness.a.start()
        harness.b.start()
        yield harness
    finally:
        harness.close()


def kid() -> str:
    """A fresh key_id."""
    return str(uuid.uuid4())


def container(*key_ids: str, callback: str | None = None, **changes: Any) -> dict[str, Any]:
    """An ext_key_container from sae-a to sae-b."""
    doc: dict[str, Any] = {"keys": [{"key_id": k, "value": base64.b64encode(VALUE).decode()}
                                    for k in key_ids],
                           "initiator_sae_id": "sae-a", "target_sae_ids": ["sae-b"]}
    if callback is not None:
        doc["ack_callback_url"] = callback
    doc.update(changes)
    return doc


def assert_problem(reply: httpx.Response, status: int, kind: str) -> dict[str, Any]:
    """The reply is an RFC 9457 problem detail of ``status`` and type ``kind``."""
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"] == "application/problem+json"
    doc: dict[str, Any] = reply.json()
    assert set(doc) == {"type", "status", "title", "details"}
    assert (doc["type"], doc["status"]) == (TYPE_BASE + kind, status)
    assert isinstance(doc["title"], str) and isinstance(doc["details"], dict)
    assert base64.b64encode(VALUE).decode() not in reply.text
    return doc


def test_versions_advertise_synchronous_mode(net: Harness) -> None:
    """GET /kmapi/versions: v1 and the synchronous_mode capability; wrong method 405,
    unknown path 404, both as problem details."""
    with net.http() as http:
        reply = http.get(net.b.url + "/kmapi/versions")
        assert reply.status_code == 200
        assert reply.json() == {"versions": ["v1"], "capabilities": ["synchronous_mode"]}
        assert http.post(net.b.url + "/kmapi/versions").status_code == 405
        missing = http.get(net.b.url + "/kmapi/v2/ext_keys")
        assert missing.status_code == 404 and missing.json()["type"] == "about:blank"


def test_asynchronous_push_acks_reach_the_callback(net: Harness) -> None:
    """With ack_callback_url: 202 at once, the key held at b for sae-b, the 'relayed' ack
    POSTed to a's callback, where the key becomes releasable."""
    client = net.client()
    key = ExtKey(kid(), VALUE)
    reply = net.run(client.push(
        [key], "sae-a", ["sae-b"], callback_url=net.a.url + "/kmapi/v1/ext_keys/ack"))
    assert reply.status == 202 and reply.acks == ()
    assert net.b.held(key.key_id) == ("sae-a", "sae-b")
    assert wait_for(lambda: len(net.a.released) == 1, TIMEOUT)
    assert net.a.released[0][0].key_id == key.key_id
    entry = net.a.entry(key.key_id)
    assert entry is not None and entry.state == "relayed" and not entry.inbound
    assert net.b.app.delivered == [(net.a.url + "/kmapi/v1/ext_keys/ack", 200)]
    net.run(client.aclose())


def test_synchronous_push_answers_with_acks(net: Harness) -> None:
    """Without a callback: 200 with the ack_containers, the key released at a at once."""
    client = net.client()
    keys = [ExtKey(kid(), VALUE), ExtKey(kid(), VALUE)]
    reply = net.run(client.push(keys, "sae-a", ["sae-b"]))
    assert reply.status == 200
    assert [(a.status, set(a.key_ids)) for a in reply.acks] == [
        ("relayed", {k.key_id for k in keys})]
    assert {k.key_id for k, _ in reply.released} == {k.key_id for k in keys}
    net.run(client.aclose())


def test_void_with_and_without_confirmation(net: Harness) -> None:
    """Void named keys (200, voided, discarded at b); empty key_ids without confirmation
    400 no-key-ids-or-confirmation, with it every key between the SAEs; asynchronous void
    202 with the acks at the callback."""
    k1, k2, k3 = kid(), kid(), kid()
    with net.http() as http:
        assert http.post(net.b.url + "/kmapi/v1/ext_keys",
                         json=container(k1, k2, k3)).status_code == 200
        void = {"key_ids": [k1], "initiator_sae_id": "sae-a", "target_sae_ids": ["sae-b"]}
        reply = http.post(net.b.url + "/kmapi/v1/ext_keys/void", json=void)
        assert reply.status_code == 200
        assert reply.json()[0]["ack_status"] == "voided"
        assert net.b.held(k1) is None and net.b.held(k2) is not None
        assert_problem(http.post(net.b.url + "/kmapi/v1/ext_keys/void",
                                 json={**void, "key_ids": []}),
                       400, "no-key-ids-or-confirmation")
        assert net.b.held(k2) is not None
        reply = http.post(net.b.url + "/kmapi/v1/ext_keys/void",
                          json={**void, "key_ids": [k2, k3]})
        assert {a["ack_status"] for a in reply.json()} == {"voided"}
        callback = net.a.url + "/kmapi/v1/ext_keys/ack"
    client = net.client()
    # a's own pushes, voided through the client with a callback: the peer's acks come back
    k4 = kid()
    assert net.run(client.push([ExtKey(k4, VALUE)], "sae-a", ["sae-b"])).status == 200
    everything = Void((), "sae-a", ("sae-b",), all_confirmation=True, callback_url=callback)
    assert net.run(client.void(everything)).status == 202
    assert wait_for(lambda: all(net.b.held(k) is None for k in (k2, k3, k4)), TIMEOUT)
    assert wait_for(lambda: (callback, 200) in net.b.app.delivered, TIMEOUT)
    entry = net.a.entry(k4)
    assert entry is not None and entry.state == "voided"
    net.run(client.aclose())


def test_replays_and_tombstones_survive_a_restart(net: Harness) -> None:
    """After b restarts (files reopened): a replayed key_id is acknowledged as before but
    never held again, and a voided one (also one voided before it was ever seen) is
    refused, never delivered."""
    delivered, voided, unseen = kid(), kid(), kid()
    with net.http() as http:
        http.post(net.b.url + "/kmapi/v1/ext_keys", json=container(delivered, voided))
        http.post(net.b.url + "/kmapi/v1/ext_keys/void",
                  json={"key_ids": [voided, unseen], "initiator_sae_id": "sae-a",
                        "target_sae_ids": ["sae-b"]})
    taken = net.b.on_loop(lambda: net.b.store.release_keys([delivered], "sae-a", "sae-b"))
    assert taken[0].material == VALUE
    net.b.stop()
    net.b.start()
    with net.http() as http:
        reply = http.post(net.b.url + "/kmapi/v1/ext_keys",
                          json=container(delivered, voided, unseen))
    assert reply.status_code == 200
    got = {k["key_id"]: a["ack_status"] for a in reply.json() for k in a["key_id_container"]}
    assert got == {delivered: "relayed", voided: "failed", unseen: "failed"}
    for key_id in (delivered, voided, unseen):
        assert net.b.held(key_id) is None
    assert net.b.entry(voided) is not None and net.b.entry(unseen) is not None
    ledger = (net.b.folder / "etsi020.db").read_bytes()
    assert VALUE not in ledger and base64.b64encode(VALUE) not in ledger


@pytest.mark.parametrize(("field", "changes"), [
    ("keys", {"keys": []}),
    ("keys[0].key_id", {"keys": [{"key_id": "123", "value": "AAE="}]}),
    ("keys[0].value", {"keys": [{"key_id": "1b4e28ba-2fa1-11d2-883f-0016d3cca427",
                                 "value": "AA=="[:3]}]}),
    ("initiator_sae_id", {"initiator_sae_id": "s" * 65}),
    ("target_sae_ids", {"target_sae_ids": "sae-b"}),
    ("ack_callback_url", {"ack_callback_url": "http://127.0.0.1/ack"}),
    ("ack_callback_url", {"ack_callback_url": "https://h/" + "x" * 1015}),
    ("extension_optional", {"extension_optional": {"a": 1}}),
])
def test_malformed_ext_keys_are_400_with_nothing_kept(net: Harness, field: str,
                                                      changes: dict[str, Any]) -> None:
    """Each malformed field: 400 missing-parameters naming it; nothing in b's ledger."""
    key_id = kid()
    with net.http() as http:
        reply = http.post(net.b.url + "/kmapi/v1/ext_keys", json=container(key_id, **changes))
    doc = assert_problem(reply, 400, "missing-parameters")
    assert doc["details"]["field"] == f"ext_key_container.{field}"
    assert net.b.entry(key_id) is None and net.b.held(key_id) is None


def test_oversize_arrays_and_bad_json(net: Harness) -> None:
    """1025 keys, 1025 ack containers, a body that is not JSON: 400 of the right type."""
    with net.http() as http:
        many = container(*[kid() for _ in range(1025)])
        assert_problem(http.post(net.b.url + "/kmapi/v1/ext_keys", json=many),
                       400, "missing-parameters")
        ack = {"key_id_container": [{"key_id": kid()}], "ack_status": "relayed",
               "initiator_sae_id": "sae-a", "target_sae_ids": ["sae-b"]}
        assert_problem(http.post(net.b.url + "/kmapi/v1/ext_keys/ack", json=[ack] * 1025),
                       400, "ack-not-understood")
        for path, kind in (("ext_keys", "missing-parameters"), ("ext_keys/ack",
                           "ack-not-understood"), ("ext_keys/void",
                                                   "void-request-not-understood")):
            assert_problem(http.post(f"{net.b.url}/kmapi/v1/{path}", content=b"{nope"),
                           400, kind)


def test_a_body_over_the_cap_is_413(net: Harness) -> None:
    """A body over the app's cap (1 MiB here): 413, a problem detail, nothing kept."""
    key_id = kid()
    big = container(key_id, extension_optional=[{"pad": "x" * 2**20}])
    with net.http() as http:
        reply = http.post(net.b.url + "/kmapi/v1/ext_keys", json=big)
    assert reply.status_code == 413 and reply.json()["type"] == "about:blank"
    assert reply.json()["status"] == 413 and net.b.entry(key_id) is None


def test_refusals_by_routing_and_extensions(net: Harness) -> None:
    """Unknown target 400 key-routing-error; several targets 503 key-routing-error;
    a mandatory extension 503 unsupported-mandatory-extension; nothing kept."""
    key_id = kid()
    url = net.b.url + "/kmapi/v1/ext_keys"
    with net.http() as http:
        assert_problem(http.post(url, json=container(key_id, target_sae_ids=["sae-q"])),
                       400, "key-routing-error")
        assert_problem(http.post(url, json=container(key_id,
                                                     target_sae_ids=["sae-b", "sae-a"])),
                       503, "key-routing-error")
        assert_problem(http.post(url, json=container(
            key_id, extension_mandatory=[{"x_relay_route": ["n1"]}])),
            503, "unsupported-mandatory-extension")
        ok = http.post(url, json=container(key_id, extension_optional=[{"x_hint": 1}]))
    assert ok.status_code == 200 and net.b.held(key_id) is not None


def test_a_caller_not_a_peer_gets_401_with_nothing_kept(net: Harness) -> None:
    """A KME that is not a peer, and an SAE: 401 unauthorized on every endpoint."""
    key_id = kid()
    for who in ("kms-x", "sae-a"):
        with net.http(who) as http:
            for path, body in (("/kmapi/v1/ext_keys", container(key_id)),
                               ("/kmapi/v1/ext_keys/ack", []),
                               ("/kmapi/v1/ext_keys/void", {})):
                assert_problem(http.post(net.b.url + path, json=body), 401, "unauthorized")
            assert_problem(http.get(net.b.url + "/kmapi/versions"), 401, "unauthorized")
    assert net.b.entry(key_id) is None and net.b.held(key_id) is None


def test_acks_at_the_ack_endpoint(net: Harness) -> None:
    """An ack for a key never pushed there: 400 key-not-present; a malformed one 400
    ack-not-understood; a good one 200."""
    client = net.client()
    key = ExtKey(kid(), VALUE)
    net.a.on_loop(lambda: net.a.kms.send("kms-b", ExtKeys((key,), "sae-a", ("sae-b",)), 0.0))
    ack = {"key_id_container": [{"key_id": key.key_id}], "ack_status": "relayed",
           "initiator_sae_id": "sae-a", "target_sae_ids": ["sae-b"]}
    with net.http("kms-b") as http:
        url = net.a.url + "/kmapi/v1/ext_keys/ack"
        assert_problem(http.post(url, json=[{**ack, "key_id_container": [{"key_id": kid()}]}]),
                       400, "key-not-present")
        assert_problem(http.post(url, json=[{**ack, "ack_status": "done"}]),
                       400, "ack-not-understood")
        assert http.post(url, json=[ack]).status_code == 200
    assert [k.key_id for k, _ in net.a.released] == [key.key_id]
    net.run(client.aclose())


def test_an_incomplete_body_times_out_408(net: Harness) -> None:
    """A body shorter than its Content-Length: 408 timeout once the wait is over."""
    pki = net.pki
    context = tls_context(pki.kme_cert("kms-a"), pki.kme_key("kms-a"), pki.ca_cert)
    assert net.b.server is not None
    with socket.create_connection(("127.0.0.1", net.b.server.port), TIMEOUT) as raw, \
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        tls.sendall(b"POST /kmapi/v1/ext_keys HTTP/1.1\r\nHost: b\r\n"
                    b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"keys\"")
        reply = _read_reply(tls)
    assert reply.startswith(b"HTTP/1.1 408")
    assert (TYPE_BASE + "timeout").encode() in reply


def _read_reply(tls: ssl.SSLSocket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
        chunk = tls.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def test_callback_retries_are_bounded(net: Harness) -> None:
    """A callback nobody answers: tried a bounded number of times, then given up."""
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    key_id = kid()
    with net.http() as http:
        reply = http.post(net.b.url + "/kmapi/v1/ext_keys",
                          json=container(key_id, callback=f"https://127.0.0.1:{port}/ack"))
    assert reply.status_code == 202 and reply.json() == {}
    net.run(net.b.app.idle())
    assert net.b.app.delivered == [] and net.b.held(key_id) is not None
