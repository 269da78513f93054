"""Serving an ASGI app over mutual TLS with uvicorn, the client certificate in the scope.

uvicorn puts nothing about TLS into the ASGI scope. :class:`ClientCertProtocol`, an
``H11Protocol``, reads the peer certificate once per connection (after the handshake) and
wraps the app for that connection so that every request on it carries::

    scope["extensions"]["tls"]["client_cert_der"]   # bytes, or None on a plain connection

(other extensions, and other keys of ``"tls"``, are kept). Apps read it with
:func:`client_certificate`, and turn it into an SAE ID with
:func:`qkdnet.live.pki.sae_id_from_certificate`. A caller without a certificate from the
trusted CA never gets that far: :func:`server_ssl_context` requires one, so the handshake
fails before HTTP starts.

Several servers in one loop (one per KME, each with its own port)::

    servers = [make_server(app_of[k], "127.0.0.1", 0, server_ssl_context(crt, key, ca))
               for k in kmes]
    ports = [s.port for s in servers]     # known at once: make_server binds the socket
    await serve_many(servers)             # returns once every server has shut down

:func:`stop` (or setting ``server.should_exit = True``; any thread may, uvicorn polls it
every 0.1 s) ends them: open connections are closed, requests in progress get up to
``shutdown_timeout_s`` to finish. Cancelling the task that runs :func:`serve_many` (which is
what ``asyncio.run`` does on Ctrl-C) shuts the servers down the same graceful way before the
cancellation goes on. uvicorn's own signal handlers are not installed: signals are the
business of whoever runs the loop.

Port 0: :func:`make_server` binds and listens on the socket itself and hands it to uvicorn,
so ``server.port`` is the real port before the loop even starts, and a client that connects
early waits in the listen backlog instead of being refused.

Needs uvicorn >= 0.47 (``Config(ssl_context_factory=...)``) so that the server uses exactly
the ``ssl.SSLContext`` it is given.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import (
    Awaitable,
    Callable,
    Coroutine,
    Generator,
    Iterable,
    Mapping,
    MutableMapping,
)
from pathlib import Path
from typing import Any, cast

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from qkdnet.live.connection_limits import ConnectionBudget, GuardedListener, ListenerLimits

__all__ = [
    "CLOSE_GRACE_S",
    "HEADER_TIMEOUT_S",
    "ASGIApp",
    "ClientCertProtocol",
    "LimitedConfig",
    "TlsServer",
    "client_certificate",
    "connection_tls",
    "make_server",
    "serve_many",
    "server_ssl_context",
    "stop",
    "with_client_certificate",
]

Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[Message]],
     Callable[[Message], Awaitable[None]]],
    Awaitable[None],
]
"""An ASGI 3 application (Starlette's and FastAPI's apps are ones)."""

CLOSE_GRACE_S = 1.0
"""Seconds an idle client has, at shutdown, to answer the TLS close before it is cut."""

HEADER_TIMEOUT_S = 5.0
"""Seconds a client has, from the first byte of a request, to finish its headers."""


class LimitedConfig(uvicorn.Config):
    """uvicorn's config and the request-header timeout (s) the protocol enforces."""

    header_timeout_s: float = HEADER_TIMEOUT_S


def server_ssl_context(cert: Path, key: Path, ca: Path) -> ssl.SSLContext:
    """A server context for mutual TLS: TLS >= 1.2, the client must present a certificate
    that chains to ``ca``."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_cert_chain(cert, key)
    context.load_verify_locations(cafile=ca)
    return context


def om_ssl_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A server context for the O&M port off loopback: TLS >= 1.2 with a certificate of
    the network; no client certificate (operators log in, browsers have none)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context


def connection_tls(scope: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ``tls`` extension of the connection a request came on: one dict per connection,
    shared by its requests, so an app may keep what it learns of the peer there (the SAE
    identity, parsed once per connection); None if there is none."""
    tls = (scope.get("extensions") or {}).get("tls")
    return tls if isinstance(tls, dict) else None


def client_certificate(scope: Mapping[str, Any]) -> bytes | None:
    """The DER client certificate of the connection a request came on; None if there is
    none (a plain-HTTP server, or an app not served by :func:`make_server`)."""
    tls = (scope.get("extensions") or {}).get("tls") or {}
    der = tls.get("client_cert_der") if isinstance(tls, Mapping) else None
    return der if isinstance(der, bytes) and der else None


class ClientCertProtocol(H11Protocol):
    """uvicorn's h11 protocol, adding the client certificate to every request's scope,
    and closing connections idle from the start or slow to send their headers."""

    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(  # type: ignore[override]
        self, transport: asyncio.Transport
    ) -> None:
        """Called once per connection, after the TLS handshake: wrap the app for it."""
        super().connection_made(transport)
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            # asyncio sets TCP_NODELAY only on sockets made with proto=IPPROTO_TCP; without
            # it h11's separate header and body records wait ~40 ms for a delayed ACK.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        tls = cast(ssl.SSLObject | None, transport.get_extra_info("ssl_object"))
        der = tls.getpeercert(binary_form=True) if tls is not None else None
        self.app = with_client_certificate(self.app, der)
        # A connection that never sends a request is idle from the start: uvicorn arms
        # its keep-alive timer only after a response, so without this it would stay open.
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler)

    def data_received(self, data: bytes) -> None:
        """uvicorn's, with a deadline on the headers of each request: the clock starts at
        the request's first byte and is not reset by later ones (a client trickling a
        byte at a time is cut as surely as one that stops)."""
        waiting = self.cycle is None or self.cycle.response_complete
        if waiting and self._header_timer is None:
            timeout = getattr(self.config, "header_timeout_s", HEADER_TIMEOUT_S)
            self._header_timer = self.loop.call_later(timeout, self._header_timeout)
        super().data_received(data)
        if self._header_timer is not None and self.conn.their_state is not h11.IDLE:
            self._header_timer.cancel()
            self._header_timer = None

    def on_response_complete(self) -> None:
        """uvicorn's; the next request gets its own header deadline."""
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        """uvicorn's, and the header deadline dropped."""
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        super().connection_lost(exc)

    def _header_timeout(self) -> None:
        self._header_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()

    def shutdown(self) -> None:
        """uvicorn's graceful shutdown, but an idle connection is cut if the TLS close has
        not finished after ``CLOSE_GRACE_S``.

        asyncio waits up to 30 s for the client's close_notify, which a client idling in a
        connection pool never sends; the server's shutdown would wait as long and then
        leave the socket open.
        """
        idle = self.cycle is None or self.cycle.response_complete
        if idle and self.transport.is_closing():  # closed after keep-alive: long flushed
            self.transport.abort()
            return
        super().shutdown()
        if idle:
            self.loop.call_later(CLOSE_GRACE_S, self._abort_if_open)

    def _abort_if_open(self) -> None:
        if self in self.connections:
            self.transport.abort()


def with_client_certificate(
    app: Callable[[Any, Any, Any], Awaitable[None]], der: bytes | None
) -> Callable[[Any, Any, Any], Coroutine[Any, Any, None]]:
    """``app`` with ``scope["extensions"]["tls"]["client_cert_der"] = der`` on every call
    (other extensions and ``"tls"`` keys kept; the caller's scope is not changed). The
    ``tls`` dict is made once, here, and shared by every request of the connection (see
    :func:`connection_tls`).

    The server does this per connection; tests can use it to call a KME app as a given SAE
    without TLS (for example through ``httpx.ASGITransport``).
    """
    connection: dict[str, Any] = {"client_cert_der": der}

    async def with_client_cert(scope: Any, receive: Any, send: Any) -> None:
        extensions = scope.get("extensions")
        if extensions and extensions.get("tls"):  # the server's own: merged, once
            connection.update({**extensions["tls"], **connection})
        await app({**scope, "extensions": {**(extensions or {}), "tls": connection}},
                  receive, send)

    return with_client_cert


class TlsServer(uvicorn.Server):
    """A uvicorn server on a socket bound in advance (see :func:`make_server`), without
    uvicorn's signal handling."""

    def __init__(self, config: uvicorn.Config, sock: socket.socket) -> None:
        super().__init__(config)
        self.socket = sock
        self._port = int(sock.getsockname()[1])

    @property
    def port(self) -> int:
        """The TCP port the server listens on (the real one when asked for port 0)."""
        return self._port

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        """Serve on the bound socket until ``should_exit``; closes the socket on return."""
        try:
            await super().serve(sockets=[self.socket] if sockets is None else sockets)
        finally:
            self.socket.close()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        """Install nothing: several servers share a loop, and its owner handles signals."""
        yield


def make_server(app: ASGIApp, host: str, port: int, ssl_context: ssl.SSLContext | None, *,
                keep_alive_s: int = 30, shutdown_timeout_s: int = 5,
                header_timeout_s: float = HEADER_TIMEOUT_S,
                limits: ListenerLimits | None = None,
                budget: ConnectionBudget | None = None) -> TlsServer:
    """A server for ``app`` on ``host``:``port`` (0: any free port, see ``.port``) over TLS,
    or plain HTTP without ``ssl_context`` (the O&M endpoints, for Prometheus and browsers).

    With ``limits``, connections beyond them, or beyond ``budget`` (process-wide, shared by
    the servers given it), are closed on accept (see :mod:`qkdnet.live.connection_limits`).
    A request whose headers are not complete ``header_timeout_s`` after its first byte
    has its connection closed.

    HTTP/1.1 with keep-alive (idle connections, also ones that never send a request,
    closed after ``keep_alive_s``); no lifespan
    events, websockets, proxy headers or access log. uvicorn's loggers are set to warnings
    only and otherwise left to the application's logging setup.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family, backlog=1024)
    if limits is not None:
        sock = GuardedListener.around(sock, limits, budget or ConnectionBudget())
    try:
        config = LimitedConfig(
            app, host=host, port=int(sock.getsockname()[1]), http=ClientCertProtocol,
            ws="none", lifespan="off", log_config=None, log_level="warning", access_log=False,
            proxy_headers=False, timeout_keep_alive=keep_alive_s,
            timeout_graceful_shutdown=shutdown_timeout_s,
            ssl_context_factory=None if ssl_context is None
            else lambda _config, _default: ssl_context,
        )
        config.header_timeout_s = header_timeout_s
        return TlsServer(config, sock)
    except BaseException:
        sock.close()
        raise


def stop(servers: Iterable[uvicorn.Server]) -> None:
    """Ask every server to shut down (safe from any thread)."""
    for server in servers:
        server.should_exit = True


async def serve_many(servers: Iterable[TlsServer]) -> None:
    """Run every server in this loop until all have shut down.

    When one server fails, the others are stopped and its error is raised; when this task is
    cancelled, all are stopped gracefully before the cancellation goes on.
    """
    servers = list(servers)
    if not servers:
        return
    tasks = [asyncio.create_task(s.serve(), name=f"tls-server:{s.port}") for s in servers]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    finally:
        stop(servers)
        results = await asyncio.gather(*tasks, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
