"""Mutual TLS with uvicorn: the app sees the calling SAE, callers without a certificate from
the CA are refused at the handshake, connections are kept alive, and several servers share
one loop and stop cleanly."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import httpx
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from qkdnet.live.connection_limits import ListenerLimits
from qkdnet.live.pki import Pki, init_pki, sae_id_from_certificate
from qkdnet.live.runtime import loop_factory
from qkdnet.live.tls_server import (
    CoalescedWrites,
    TlsServer,
    client_certificate,
    make_server,
    serve_many,
    server_ssl_context,
    stop,
    with_client_certificate,
)

TIMEOUT = 10.0


def _app(kme: str) -> Starlette:
    """Answers who is calling, on which client port, and which KME answered."""

    async def whoami(request: Request) -> JSONResponse:
        der = client_certificate(request.scope)
        return JSONResponse({
            "kme": kme,
            "sae_id": sae_id_from_certificate(der) if der else None,
            "client_port": request.client.port if request.client else None,
        })

    return Starlette(routes=[Route("/whoami", whoami)])


class Running:
    """Servers run by serve_many in a thread of their own, with their own loop."""

    def __init__(self, servers: Sequence[TlsServer], loop: str = "asyncio") -> None:
        self.servers = servers
        self.factory = loop_factory(loop)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + TIMEOUT
        while not all(s.started for s in servers):
            assert self.thread.is_alive() and time.monotonic() < deadline, self.error
            time.sleep(0.01)

    def _run(self) -> None:
        try:
            with asyncio.Runner(loop_factory=self.factory) as runner:
                runner.run(serve_many(self.servers))
        except BaseException as exc:
            self.error = exc

    def stop(self) -> None:
        stop(self.servers)
        self.thread.join(TIMEOUT)
        assert not self.thread.is_alive() and self.error is None


def _server(pki: Pki, kme: str) -> TlsServer:
    context = server_ssl_context(pki.kme_cert(kme), pki.kme_key(kme), pki.ca_cert)
    return make_server(_app(kme), "127.0.0.1", 0, context)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return init_pki(tmp_path_factory.mktemp("pki"), ["A", "B"], ["alice", "bob"])


@pytest.fixture(scope="module")
def stranger(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """Another CA, with an SAE of the same name."""
    return init_pki(tmp_path_factory.mktemp("other"), ["A"], ["alice"])


@pytest.fixture(scope="module", params=["uvloop", "asyncio"])
def server(pki: Pki, request: pytest.FixtureRequest) -> Iterator[TlsServer]:
    """KME A's server, on uvloop's event loop (serve's default) and on asyncio's."""
    running = Running([_server(pki, "A")], str(request.param))
    yield running.servers[0]
    running.stop()


def _url(server: TlsServer, host: str = "127.0.0.1") -> str:
    return f"https://{host}:{server.port}/whoami"


def _ca(pki: Pki) -> str:
    return str(pki.ca_cert)


def _as(pki: Pki, sae: str) -> tuple[str, str]:
    return (str(pki.sae_cert(sae)), str(pki.sae_key(sae)))


@pytest.mark.parametrize("sae", ["alice", "bob"])
def test_the_app_sees_the_calling_sae(pki: Pki, server: TlsServer, sae: str) -> None:
    """The SAE ID comes from the client certificate of the connection."""
    reply = requests.get(_url(server), cert=_as(pki, sae), verify=_ca(pki), timeout=TIMEOUT)
    assert reply.status_code == 200
    assert reply.json()["sae_id"] == sae


def test_the_server_certificate_is_valid_for_localhost(pki: Pki, server: TlsServer) -> None:
    """A client that checks the host name accepts the KME as localhost too."""
    reply = requests.get(_url(server, "localhost"), cert=_as(pki, "alice"),
                         verify=_ca(pki), timeout=TIMEOUT)
    assert reply.json()["sae_id"] == "alice"


def test_a_client_without_a_certificate_is_refused(pki: Pki, server: TlsServer) -> None:
    """No client certificate: the TLS handshake fails, no HTTP reply."""
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(_url(server), verify=_ca(pki), timeout=TIMEOUT)


def test_a_certificate_from_another_ca_is_refused(pki: Pki, stranger: Pki,
                                                   server: TlsServer) -> None:
    """A certificate naming a known SAE but issued by a foreign CA is refused."""
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(_url(server), cert=_as(stranger, "alice"), verify=_ca(pki),
                     timeout=TIMEOUT)
    # The server is unharmed.
    assert requests.get(_url(server), cert=_as(pki, "alice"), verify=_ca(pki),
                        timeout=TIMEOUT).status_code == 200


def test_a_session_keeps_its_connection(pki: Pki, server: TlsServer) -> None:
    """Two calls over one requests.Session use one TLS connection; the app sees both."""
    with requests.Session() as session:  # verify per call: REQUESTS_CA_BUNDLE beats Session.verify
        session.cert = _as(pki, "bob")
        first, second = (session.get(_url(server), verify=_ca(pki), timeout=TIMEOUT).json()
                         for _ in range(2))
    assert first["sae_id"] == second["sae_id"] == "bob"
    assert first["client_port"] == second["client_port"]


def test_client_certificate_is_none_outside_a_tls_connection() -> None:
    """Scopes without the extension (or with other extensions only) give None."""
    assert client_certificate({"type": "http"}) is None
    assert client_certificate({"extensions": {"http.response.trailers": {}}}) is None
    assert client_certificate({"extensions": {"tls": {"client_cert_der": None}}}) is None
    assert client_certificate({"extensions": {"tls": {"client_cert_der": b"x"}}}) == b"x"


def _refused(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def test_several_servers_share_one_loop_and_stop_cleanly(pki: Pki) -> None:
    """Each KME answers on its own port; after stop, both ports are closed."""
    servers = [_server(pki, "A"), _server(pki, "B")]
    assert servers[0].port != servers[1].port and all(s.port > 0 for s in servers)
    running = Running(servers)
    with requests.Session() as session:  # a kept-alive connection must not block the stop
        for s, kme in zip(servers, ["A", "B"], strict=True):
            reply = session.get(_url(s), cert=_as(pki, "alice"), verify=_ca(pki),
                                timeout=TIMEOUT)
            assert reply.json() == {**reply.json(), "kme": kme, "sae_id": "alice"}
        started = time.monotonic()
        running.stop()
        # well before shutdown_timeout_s (5 s): idle TLS connections are cut after 1 s
        assert time.monotonic() - started < 4.0
    assert all(_refused(s.port) for s in servers)


def test_serve_many_with_no_servers_returns_at_once() -> None:
    """An empty network serves nothing."""
    asyncio.run(asyncio.wait_for(serve_many([]), TIMEOUT))


def test_cancelling_serve_many_shuts_down_gracefully(pki: Pki) -> None:
    """Cancellation (Ctrl-C under asyncio.run) stops the servers and closes their ports."""
    server = _server(pki, "A")

    async def main() -> None:
        task = asyncio.create_task(serve_many([server]))
        while not server.started:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(asyncio.wait_for(main(), TIMEOUT))
    assert server.should_exit and _refused(server.port)


def test_the_wrapper_adds_the_certificate_and_keeps_other_extensions() -> None:
    """Existing extensions, and other keys of "tls", survive; the caller's scope is untouched."""
    seen: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope)

    scope: dict[str, Any] = {"type": "http",
                             "extensions": {"trailers": {}, "tls": {"tls_version": 0x0304}}}
    asyncio.run(with_client_certificate(app, b"der")(scope, None, None))
    assert seen[0]["extensions"] == {"trailers": {},
                                     "tls": {"tls_version": 0x0304, "client_cert_der": b"der"}}
    assert scope["extensions"]["tls"] == {"tls_version": 0x0304}


def test_an_app_can_be_called_as_an_sae_without_tls(pki: Pki) -> None:
    """with_client_certificate + httpx.ASGITransport: the app sees the SAE, no server."""
    der = x509.load_pem_x509_certificate(pki.sae_cert("bob").read_bytes()).public_bytes(
        Encoding.DER)
    transport = httpx.ASGITransport(app=with_client_certificate(_app("A"), der))

    async def call() -> Any:
        async with httpx.AsyncClient(transport=transport, base_url="https://kme") as client:
            return (await client.get("/whoami")).json()

    assert asyncio.run(call())["sae_id"] == "bob"


class _Recorded:
    """A transport stand-in that records what reaches it."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, bytes]] = []

    def write(self, data: bytes) -> None:
        self.calls.append(("write", data))

    def close(self) -> None:
        self.calls.append(("close", b""))

    def is_closing(self) -> bool:
        return False


def test_a_response_head_and_body_go_out_in_one_write() -> None:
    """Writes are held and joined: flushed as one, at the response's end, on close (before
    closing) or at the loop's next turn; other calls reach the transport."""
    async def main() -> list[tuple[str, bytes]]:
        raw = _Recorded()
        out = CoalescedWrites(raw, asyncio.get_running_loop())  # type: ignore[arg-type]
        out.write(b"HTTP/1.1 200 OK\r\n\r\n")
        out.write(b"{}")
        assert raw.calls == []
        out.flush()  # what the protocol does when the response is complete
        out.write(b"100 Continue")
        await asyncio.sleep(0)  # the next turn flushes what nobody flushed
        await asyncio.sleep(0)
        out.write(b"last")
        out.close()
        assert out.is_closing() is False  # delegated
        return raw.calls

    assert asyncio.run(main()) == [("write", b"HTTP/1.1 200 OK\r\n\r\n{}"),
                                   ("write", b"100 Continue"), ("write", b"last"),
                                   ("close", b"")]


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_clients_gone_mid_handshake_give_their_places_back(pki: Pki, loop: str) -> None:
    """Connections closed before their TLS handshake ends free their places under the
    caps (three rounds fill them), an SAE is then served, and a handshake under way at
    shutdown is ended."""
    limits = ListenerLimits(max_connections=4, max_per_address=4)
    context = server_ssl_context(pki.kme_cert("A"), pki.kme_key("A"), pki.ca_cert)
    server = make_server(_app("A"), "127.0.0.1", 0, context, limits=limits)
    caps = server.config.caps
    assert caps is not None
    running = Running([server], loop)
    try:
        for _ in range(3):
            silent = [socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)
                      for _ in range(limits.max_connections)]
            silent[0].sendall(b"\x16\x03\x01\x00\x10half")  # half a ClientHello
            deadline = time.monotonic() + TIMEOUT
            while caps.open < len(silent) and time.monotonic() < deadline:  # all let in
                time.sleep(0.01)
            for sock in silent:
                sock.close()
            while caps.open and time.monotonic() < deadline:
                time.sleep(0.01)
            assert caps.open == 0
        reply = requests.get(_url(server), cert=_as(pki, "alice"), verify=_ca(pki),
                             timeout=TIMEOUT)
        assert reply.json()["sae_id"] == "alice"
        held = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)
    finally:
        running.stop()
    held.close()
    assert not server.server_state.connections and not server.config.handshaking
