"""The KME under bad input, as served by ``qkdnet serve`` of the a--b--c chain over mutual
TLS: every error is an ETSI Error object ``{"message", "details"?}`` with the right status,
bodies are capped before parsing, an order no pool can hold is refused before a pad is
spent, and a schemathesis run over ``/openapi.json`` finds no 5xx and no non-JSON error.

Pools are prefilled past their capacity and key is made at 1e-6 of the modelled rate, so
the pad counts the tests compare do not move by themselves.
"""

from __future__ import annotations

import json
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from chain_scenario import CHAIN_SCENARIO
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from qkdnet.apps.sae_client import tls_context
from qkdnet.live.launch import CA_BUNDLE_VARIABLES, ServeFailed, ServeProcess, start_serve

API = "/api/v1/keys"
CALL_TIMEOUT_S = 30.0
#: 600 MB, the body the issue's attacker claimed.
HUGE_BYTES = 600_000_000
#: RSS growth the server may show while refusing HUGE_BYTES (bytes).
MAX_RSS_GROWTH = 50 * 2**20
SCHEMATHESIS_CASES = 2000


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    """The chain's KMEs, full pools, for the whole module."""
    folder = tmp_path_factory.mktemp("kme-errors")
    (folder / "scenario.yaml").write_text(CHAIN_SCENARIO)
    try:
        process = start_serve(folder / "live", str(folder / "scenario.yaml"),
                              ["--prefill-bits", "4000000", "--speedup", "0.000001"])
    except ServeFailed as exc:
        pytest.fail(str(exc))
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(autouse=True)
def _no_ca_bundle(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in CA_BUNDLE_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def client(served: ServeProcess, sae: str = "sae-a") -> httpx.Client:
    """A keep-alive client of ``sae``'s KME with the SAE's certificate."""
    (cert, key), ca = served.tls(sae)
    return httpx.Client(base_url=served.kme_url(sae), verify=tls_context(cert, key, ca),
                        trust_env=False, timeout=CALL_TIMEOUT_S)


def assert_etsi_error(response: httpx.Response, status: int) -> dict[str, Any]:
    """``response`` is an ETSI Error object with ``status``; its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert isinstance(body, dict) and isinstance(body.get("message"), str), body
    assert set(body) <= {"message", "details"}, body
    return body


def rss_bytes(pid: int) -> int:
    """Resident memory of process ``pid`` (bytes), from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def stored(http: httpx.Client, slave: str = "sae-c") -> int:
    """stored_key_count of the pair (256-bit keys the route's pads could carry)."""
    response = http.get(f"{API}/{slave}/status")
    assert response.status_code == 200, response.text
    return int(response.json()["stored_key_count"])


# --- item 5: errors are always ETSI JSON ----------------------------------------------------

@pytest.mark.parametrize("body", ['{"number": 1e400}', '{"number": Infinity}',
                                  '{"size": NaN}', '{"number": -Infinity}', "[" * 5000,
                                  '{"key_IDs": ' + "[" * 5000, '{"number": 1', "\xff"])
def test_json_no_parser_should_accept_is_a_400_on_a_kept_connection(
        served: ServeProcess, body: str) -> None:
    """1e400, NaN, Infinity, 5,000 nested [ and broken JSON: 400 Error, connection kept."""
    with client(served) as http:
        for operation in ("sae-c/enc_keys", "sae-c/dec_keys"):
            response = http.post(f"{API}/{operation}", content=body.encode("utf-8",
                                                                           "surrogateescape"))
            assert_etsi_error(response, 400)
            assert response.headers.get("connection") != "close"
        assert stored(http) > 0  # the same connection still serves


def test_unknown_path_and_wrong_method_are_etsi_errors(served: ServeProcess) -> None:
    """404 and 405 carry {"message"}, not FastAPI's {"detail"}; 405 keeps its Allow."""
    with client(served) as http:
        assert_etsi_error(http.get("/api/v1/nothing"), 404)
        response = http.delete(f"{API}/sae-c/enc_keys")
        assert_etsi_error(response, 405)
        assert "GET" in response.headers["allow"]


@pytest.mark.parametrize("query", ["size=٢٥٦", "size=%20256%20", "size=2_56", "number=１",
                                   "number=%2B1"])
def test_integers_only_in_ascii_digits(served: ServeProcess, query: str) -> None:
    """size="٢٥٦", " 256 ", "2_56", number=１ (int() takes them all) are 400."""
    with client(served) as http:
        before = stored(http)
        body = assert_etsi_error(http.get(f"{API}/sae-c/enc_keys?{query}"), 400)
        assert body["message"].endswith("shall be an integer")
        assert stored(http) == before


def test_upper_case_key_ids_fetch_the_key(served: ServeProcess) -> None:
    """RFC 4122: the slave may ask for a key_ID in upper case and gets the key once."""
    with client(served, "sae-a") as master, client(served, "sae-c") as slave:
        keys = master.post(f"{API}/sae-c/enc_keys", json={"number": 1}).json()["keys"]
        key_id = keys[0]["key_ID"]
        got = slave.get(f"{API}/sae-a/dec_keys", params={"key_ID": key_id.upper()})
        assert got.status_code == 200, got.text
        assert got.json()["keys"] == keys
        again = slave.post(f"{API}/sae-a/dec_keys", json={"key_IDs": [{"key_ID": key_id}]})
        assert_etsi_error(again, 400)


# --- item 4: limits ----------------------------------------------------------------------

def raw_post(served: ServeProcess, head: bytes, body: Iterator[bytes]) -> tuple[bytes, int]:
    """Send ``head`` then ``body`` chunks over mutual TLS until the KME answers or cuts the
    connection; its reply and the body bytes sent."""
    (cert, key), ca = served.tls("sae-a")
    port = int(served.kme_url("sae-a").rsplit(":", 1)[1])
    context = tls_context(cert, key, ca)
    sent, reply = 0, b""
    with socket.create_connection(("127.0.0.1", port), timeout=CALL_TIMEOUT_S) as raw, \
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        tls.sendall(head)
        tls.setblocking(False)
        for chunk in body:
            try:
                reply = tls.recv(65536)
                if reply:
                    break  # answered before the body was sent
            except ssl.SSLWantReadError:
                pass
            try:
                tls.sendall(chunk)
            except (ssl.SSLWantWriteError, BlockingIOError):
                continue  # the server reads no more: look for its answer
            except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
                break
            sent += len(chunk)
        tls.setblocking(True)
        try:
            while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
                data = tls.recv(65536)
                if not data:
                    break
                reply += data
        except (ConnectionResetError, ssl.SSLError):
            pass
    return reply, sent


def _status_and_body(reply: bytes) -> tuple[int, dict[str, Any], bytes]:
    head, _, body = reply.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body), head.lower()


def test_a_600_mb_body_claim_is_refused_at_once_without_memory(served: ServeProcess) -> None:
    """Content-Length 600 MB: JSON 413 before the body is read, connection closed, RSS flat."""
    pid = served.process.pid
    before = rss_bytes(pid)
    head = (f"POST {API}/sae-c/enc_keys HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: application/json\r\nContent-Length: {HUGE_BYTES}\r\n\r\n").encode()
    reply, _ = raw_post(served, head, iter([b'{"number": ' + b"1" * 1000]))
    status, body, headers = _status_and_body(reply)
    assert status == 413 and set(body) <= {"message", "details"}, reply[:300]
    assert b"connection: close" in headers
    assert rss_bytes(pid) - before < MAX_RSS_GROWTH


def test_a_streamed_body_is_cut_at_the_cap(served: ServeProcess) -> None:
    """A chunked body with no length: refused with 413 after 64 KiB, long before 600 MB."""
    pid = served.process.pid
    before = rss_bytes(pid)
    head = (f"POST {API}/sae-c/enc_keys HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Transfer-Encoding: chunked\r\n\r\n").encode()
    piece = b" " * 2**20
    chunk = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    reply, sent = raw_post(served, head, iter([chunk] * (HUGE_BYTES // len(piece))))
    status, body, _ = _status_and_body(reply)
    assert status == 413 and "message" in body, reply[:300]
    assert sent < HUGE_BYTES // 10
    assert rss_bytes(pid) - before < MAX_RSS_GROWTH


def test_a_body_is_read_no_further_than_its_declared_length(served: ServeProcess) -> None:
    """A Get key order with its Content-Length and, in the same write, a Get status: the
    order is served from the declared bytes alone (200, one key), and what follows them is
    the next request (its own 200), never more body."""
    order = b'{"number": 1, "size": 256}'
    pipelined = (f"POST {API}/sae-c/enc_keys HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 f"Content-Length: {len(order)}\r\n\r\n").encode() + order + (
        f"GET {API}/sae-c/status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").encode()
    (cert, key), ca = served.tls("sae-a")
    port = int(served.kme_url("sae-a").rsplit(":", 1)[1])
    replies: list[tuple[bytes, dict[str, Any]]] = []
    with socket.create_connection(("127.0.0.1", port), timeout=CALL_TIMEOUT_S) as raw, \
            tls_context(cert, key, ca).wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        tls.sendall(pipelined)
        data = b""
        while len(replies) < 2:
            head, sep, rest = data.partition(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0]) \
                if sep else -1
            if sep and len(rest) >= length:
                replies.append((head.split()[1], json.loads(rest[:length])))
                data = rest[length:]
                continue
            more = tls.recv(65536)
            assert more, data[:300]
            data += more
    (status, keys), (status_2, document) = replies
    assert status == b"200" and len(keys["keys"]) == 1
    assert status_2 == b"200" and document["slave_SAE_ID"] == "sae-c"


def test_a_length_beside_chunked_encoding_is_refused(served: ServeProcess) -> None:
    """Content-Length 26 and Transfer-Encoding chunked with 600 MB of chunks: refused with
    400 by the HTTP parser, long before 600 MB (the declared length cannot let it by)."""
    head = (f"POST {API}/sae-c/enc_keys HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Content-Length: 26\r\nTransfer-Encoding: chunked\r\n\r\n").encode()
    piece = b" " * 2**20
    chunk = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    reply, sent = raw_post(served, head, iter([chunk] * (HUGE_BYTES // len(piece))))
    assert reply.split()[1] == b"400", reply[:300]
    assert sent < HUGE_BYTES // 10


def test_an_order_no_pool_can_hold_spends_no_pad(served: ServeProcess) -> None:
    """number=128&size=8192 needs more pad per hop than a pool end holds: 400, pads kept."""
    with client(served) as http:
        before = stored(http)
        body = assert_etsi_error(
            http.get(f"{API}/sae-c/enc_keys", params={"number": 128, "size": 8192}), 400)
        assert "details" in body
        assert stored(http) == before


# --- item 5: the OpenAPI document, and schemathesis over it -----------------------------------

def openapi(served: ServeProcess) -> dict[str, Any]:
    with client(served) as http:
        response = http.get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def test_openapi_lists_the_query_parameters_and_every_ref_resolves(
        served: ServeProcess) -> None:
    """GET enc_keys names number and size, GET dec_keys key_ID; each $ref points somewhere."""
    document = openapi(served)
    paths = document["paths"]
    names = {p: {q["name"] for q in paths[p]["get"].get("parameters", []) if q["in"] == "query"}
             for p in (f"{API}/{{slave_SAE_ID}}/enc_keys", f"{API}/{{master_SAE_ID}}/dec_keys")}
    assert names == {f"{API}/{{slave_SAE_ID}}/enc_keys": {"number", "size"},
                     f"{API}/{{master_SAE_ID}}/dec_keys": {"key_ID"}}
    refs = set(_refs(document))
    assert refs
    for ref in refs:
        assert ref.startswith("#/"), ref
        node: Any = document
        for part in ref[2:].split("/"):
            assert isinstance(node, dict) and part in node, f"{ref} does not resolve"
            node = node[part]


def test_schemathesis_finds_no_5xx_and_no_non_json_error(served: ServeProcess) -> None:
    """2,000 generated requests, valid and not, some with a wrong method, over mutual TLS:
    no 5xx, every error an ETSI Error object."""
    schema = schemathesis.openapi.from_dict(openapi(served))
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 5
    strategy = st.one_of([op.as_strategy(generation_mode=mode)
                          for op in operations for mode in GenerationMode])
    (cert, key), ca = served.tls("sae-a")
    session = requests.Session()
    session.trust_env = False
    seen: list[int] = []

    @settings(max_examples=SCHEMATHESIS_CASES, deadline=None, database=None,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    # a quarter of the cases go out with a method their path does not serve (405)
    @given(case=strategy, method=st.sampled_from([None, None, None, "PUT", "DELETE", "PATCH"]))
    def check(case: schemathesis.Case, method: str | None) -> None:
        if method is not None:
            case.method = method
        response = case.call(base_url=served.kme_url("sae-a"), session=session,
                             cert=(cert, key), verify=ca, timeout=CALL_TIMEOUT_S)
        seen.append(response.status_code)
        where = f"{case.method} {case.formatted_path} -> {response.status_code}"
        assert response.status_code < 500, where + f": {response.text[:300]}"
        if response.status_code >= 400:
            assert response.headers.get("content-type", [""])[0].startswith(
                "application/json"), where
            body = json.loads(response.content)
            assert isinstance(body, dict) and isinstance(body.get("message"), str), where
            assert set(body) <= {"message", "details"}, where

    try:
        check()
    finally:
        session.close()
    assert len(seen) >= SCHEMATHESIS_CASES
    assert {400, 405} <= set(seen)
