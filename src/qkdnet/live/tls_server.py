"""Serving an ASGI app over mutual TLS with uvicorn, the client certificate in the scope.

uvicorn puts nothing about TLS into the ASGI scope. :class:`FastClientCertProtocol`,
uvicorn's httptools protocol, reads the peer certificate once per connection (after the
handshake) and wraps the app for that connection so that every request on it carries::

    scope["extensions"]["tls"]["client_cert_der"]   # bytes, or None on a plain connection

(other extensions, and other keys of ``"tls"``, are kept; the ``tls`` dict is the
connection's, see :func:`connection_tls`). A response goes out in one write
(:class:`CoalescedWrites`). Apps read the certificate with
:func:`client_certificate`, and turn it into an SAE ID with
:func:`qkdnet.live.pki.sae_id_from_certificate`. A caller without a certificate from the
trusted CA never gets that far: :func:`server_ssl_context` requires one, so the handshake
fails before HTTP starts.

Several servers in one loop (one per KME, each with its own port)::

    servers = [make_server(app_of[k], "127.0.0.1", 0, server_ssl_context(crt, key, ca))
               for k in kmes]
    ports = [s.port for s in servers]     # known at once: make_server binds the socket
    await serve_many(servers)             # returns once every server has shut down

:func:`stop` (from any thread; setting ``server.should_exit = True`` works too, noticed
within :data:`TICK_S`) ends them: open connections are closed, requests in progress get up to
``shutdown_timeout_s`` to finish. Cancelling the task that runs :func:`serve_many` (which is
what ``asyncio.run`` does on Ctrl-C) shuts the servers down the same graceful way before the
cancellation goes on. uvicorn's own signal handlers are not installed: signals are the
business of whoever runs the loop.

Port 0: :func:`make_server` binds and listens on the socket itself and hands it to uvicorn,
so ``server.port`` is the real port before the loop even starts, and a client that connects
early waits in the listen backlog instead of being refused.

TLS is the server's, not the loop's: uvicorn listens without TLS, and the first protocol of
each accepted connection, :class:`ConnectionGate`, applies the connection caps (see
:mod:`qkdnet.live.connection_limits`), then runs ``loop.start_tls`` with the server's
context and hands the TLS transport to the HTTP protocol. So caps, refused-handshake audit
(the handshake fails where the peer address is known) and the HTTP protocol's hooks are the
same on asyncio's event loop and on uvloop's (``live/runtime.py`` picks the loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
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

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from qkdnet.live.connection_limits import (
    ConnectionBudget,
    GuardedListener,
    ListenerCaps,
    ListenerLimits,
)
from qkdnet.live.pki import kme_id_from_certificate

__all__ = [
    "CLOSE_GRACE_S",
    "HANDSHAKE_TIMEOUT_S",
    "HEADER_TIMEOUT_S",
    "ASGIApp",
    "ConnectionGate",
    "FastClientCertProtocol",
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

HANDSHAKE_TIMEOUT_S = 60.0
"""Seconds a client has to complete its TLS handshake (asyncio's default, kept)."""

TICK_S = 1.0
"""Seconds between a server's housekeeping ticks (Date header, ``should_exit``)."""

HandshakeRefused = Callable[[Any, ssl.SSLError], None]
"""Told of each failed TLS handshake: the peer's socket address and the error."""


class LimitedConfig(uvicorn.Config):
    """uvicorn's config and what :class:`ConnectionGate` and the HTTP protocol add: the
    request-header timeout (s), the server's TLS context (None: plain HTTP), its handshake
    timeout (s), the listener's caps (None: none) and who hears of refused handshakes."""

    header_timeout_s: float = HEADER_TIMEOUT_S
    tls: ssl.SSLContext | None = None
    handshake_timeout_s: float = HANDSHAKE_TIMEOUT_S
    caps: ListenerCaps | None = None
    on_handshake_refused: HandshakeRefused | None = None
    handshaking: set[asyncio.Transport]
    """Connections whose TLS handshake is under way (aborted when the server shuts down)."""


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


def calling_kme(scope: Mapping[str, Any]) -> str | None:
    """The KME (node) id the connection's client certificate names (its ``kme:`` URI: a
    node, or a service of the deployment), parsed once per connection and kept in its
    ``tls`` extension; None if it names none."""
    tls = connection_tls(scope)
    known = tls.get(_KME_ID) if tls is not None else None
    if isinstance(known, str):
        return known
    der = client_certificate(scope)
    kme = kme_id_from_certificate(der) if der is not None else None
    if tls is not None and kme is not None:
        tls[_KME_ID] = kme
    return kme


_KME_ID = "qkdnet.kme_id"


def client_certificate(scope: Mapping[str, Any]) -> bytes | None:
    """The DER client certificate of the connection a request came on; None if there is
    none (a plain-HTTP server, or an app not served by :func:`make_server`)."""
    tls = (scope.get("extensions") or {}).get("tls") or {}
    der = tls.get("client_cert_der") if isinstance(tls, Mapping) else None
    return der if isinstance(der, bytes) and der else None


class CoalescedWrites:
    """A transport whose writes within one turn of the event loop go out as one write.

    uvicorn writes a response's head and body separately; over TLS that is two records and
    two ``send`` calls, each a system call through the loopback stack. Held here, they go
    out together when the response completes (the protocol calls :meth:`flush`) or, for
    anything else written (a 100 Continue, an error of uvicorn's), at the loop's next turn.
    Everything but ``write``, ``close`` and ``abort`` is the wrapped transport's.
    """

    __slots__ = ("_flush_soon", "_loop", "_pending", "transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self.transport = transport
        self._loop = loop
        self._pending: list[bytes] = []
        self._flush_soon: asyncio.Handle | None = None

    def write(self, data: bytes) -> None:
        """Hold ``data`` until :meth:`flush` or the loop's next turn."""
        if self._flush_soon is None:
            self._flush_soon = self._loop.call_soon(self.flush)
        self._pending.append(data)

    def flush(self) -> None:
        """Write what is held, in one write."""
        if self._flush_soon is not None:
            self._flush_soon.cancel()
            self._flush_soon = None
        if self._pending:
            data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
            self._pending.clear()
            self.transport.write(data)

    def close(self) -> None:
        """Write what is held, then close."""
        self.flush()
        self.transport.close()

    def abort(self) -> None:
        """Drop what is held and the connection."""
        self._pending.clear()
        self.transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


class _ServedConnection:
    """What a KME adds to uvicorn's HTTP protocols (mixed in before one of them): the
    client certificate in every request's scope, TCP_NODELAY, closing connections idle from
    the start or slow to send their headers, and a bounded wait for the TLS close at
    shutdown. The hooks are uvicorn's (``connection_made``, ``data_received``, ...), which
    its h11 and httptools protocols share."""

    # uvicorn's protocol attributes this mixin uses (set by the protocol it is mixed into)
    app: Any
    config: Any
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    cycle: Any
    connections: set[Any]
    timeout_keep_alive: int
    timeout_keep_alive_task: asyncio.TimerHandle | None
    timeout_keep_alive_handler: Callable[[], None]
    _header_timer: asyncio.TimerHandle | None = None
    on_closed: Callable[[], None] | None = None
    """Called once when the connection closes (gives its place under the caps back)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Called once per connection, after the TLS handshake: wrap the app for it."""
        super().connection_made(transport)  # type: ignore[misc]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            # asyncio sets TCP_NODELAY only on sockets made with proto=IPPROTO_TCP; without
            # it the separate header and body records wait ~40 ms for a delayed ACK.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        tls = cast(ssl.SSLObject | None, transport.get_extra_info("ssl_object"))
        der = tls.getpeercert(binary_form=True) if tls is not None else None
        self.app = with_client_certificate(self.app, der)
        # A connection that never sends a request is idle from the start: uvicorn arms
        # its keep-alive timer only after a response, so without this it would stay open.
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler)
        self.transport = cast(asyncio.Transport, CoalescedWrites(self.transport, self.loop))

    def _in_request(self) -> bool:
        """Whether a request's headers are complete and its response is not: uvicorn
        starts a cycle once the headers are parsed."""
        return self.cycle is not None and not self.cycle.response_complete

    def data_received(self, data: bytes) -> None:
        """uvicorn's, with a deadline on the headers of each request: the clock starts at
        the request's first byte and is not reset by later ones (a client trickling a
        byte at a time is cut as surely as one that stops)."""
        if not self._in_request() and self._header_timer is None:
            timeout = getattr(self.config, "header_timeout_s", HEADER_TIMEOUT_S)
            self._header_timer = self.loop.call_later(timeout, self._header_timeout)
        super().data_received(data)  # type: ignore[misc]
        if self._header_timer is not None and self._in_request():
            self._header_timer.cancel()
            self._header_timer = None

    def on_response_complete(self) -> None:
        """uvicorn's; the response goes out in one write, and the next request gets its
        own header deadline."""
        if isinstance(self.transport, CoalescedWrites):
            self.transport.flush()
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        super().on_response_complete()  # type: ignore[misc]

    def connection_lost(self, exc: Exception | None) -> None:
        """uvicorn's, the header deadline dropped and :attr:`on_closed` called."""
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        self.closed()
        super().connection_lost(exc)  # type: ignore[misc]

    def closed(self) -> None:
        """Call :attr:`on_closed` (once)."""
        on_closed, self.on_closed = self.on_closed, None
        if on_closed is not None:
            on_closed()

    def _header_timeout(self) -> None:
        self._header_timer = None
        if not self._in_request() and not self.transport.is_closing():
            self.transport.close()

    def shutdown(self) -> None:
        """uvicorn's graceful shutdown, but an idle connection is cut if the TLS close has
        not finished after ``CLOSE_GRACE_S``.

        asyncio waits up to 30 s for the client's close_notify, which a client idling in a
        connection pool never sends; the server's shutdown would wait as long and then
        leave the socket open.
        """
        idle = not self._in_request()
        if idle and self.transport.is_closing():  # closed after keep-alive: long flushed
            self.transport.abort()
            return
        super().shutdown()  # type: ignore[misc]
        if idle:
            self.loop.call_later(CLOSE_GRACE_S, self._abort_if_open)

    def _abort_if_open(self) -> None:
        if self in self.connections:
            self.transport.abort()


class FastClientCertProtocol(_ServedConnection, HttpToolsProtocol):
    """uvicorn's httptools protocol (llhttp, in C) with the KME's additions: what
    :func:`make_server` serves with (a third less server CPU per call than uvicorn's h11
    protocol, measured when it was chosen)."""


class _Handshaking(asyncio.Protocol):
    """The protocol over TLS from the end of the handshake until the HTTP protocol takes
    over (a turn of the loop later): keeps what arrives, notes an end."""

    __slots__ = ("early", "ended")

    def __init__(self) -> None:
        self.early: list[bytes] = []
        self.ended = False

    def data_received(self, data: bytes) -> None:
        self.early.append(data)

    def eof_received(self) -> None:
        self.ended = True

    def connection_lost(self, exc: Exception | None) -> None:
        self.ended = True


def _drive(coro: Coroutine[Any, Any, Any],
           done: Callable[[Any, BaseException | None], None]) -> None:
    """Run ``coro`` (one that awaits futures only) now, up to its first wait, and the rest
    as its futures complete; then ``done(result, None)`` or ``done(None, error)``.

    A task would start it only at the loop's next turn: ``loop.start_tls`` must take the
    transport over within ``connection_made``, before any byte can be read (uvloop starts
    reading as soon as ``connection_made`` returns)."""
    try:
        waiting = coro.send(None)
    except StopIteration as stop:
        done(stop.value, None)
        return
    except (Exception, asyncio.CancelledError) as exc:  # handed on, not swallowed
        done(None, exc)
        return
    if waiting is None:  # a bare yield: go on at the next turn
        asyncio.get_running_loop().call_soon(_drive, coro, done)
    else:
        waiting.add_done_callback(lambda _future: _drive(coro, done))


class ConnectionGate(asyncio.Protocol):
    """The first protocol of every accepted connection (uvicorn makes one per connection:
    it is the ``http`` class :func:`make_server` gives it).

    ``connection_made`` checks the listener's caps where the listening socket has not
    (uvloop's loop; over a cap the connection is aborted at once, before any TLS), then,
    over TLS, starts the handshake (``loop.start_tls``; a failed one is reported with the
    peer's address to the config's ``on_handshake_refused``) and hands the TLS transport,
    or the plain one, to a :class:`FastClientCertProtocol`, which serves HTTP from then
    on. Works the same on asyncio's event loop and on uvloop's."""

    __slots__ = ("app_state", "config", "loop", "server_state")

    def __init__(self, config: LimitedConfig, server_state: Any, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.config, self.server_state, self.app_state = config, server_state, app_state
        self.loop = _loop or asyncio.get_running_loop()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Admit (or abort) the connection, then start TLS or plain HTTP on it."""
        config = self.config
        plain = cast(asyncio.Transport, transport)
        peer = plain.get_extra_info("peername")
        host = str(peer[0]) if isinstance(peer, tuple | list) else str(peer)
        caps = config.caps
        if caps is not None and caps.checked_at_accept:
            caps = None  # asyncio's loop: the listening socket's accept() has checked
        if caps is not None and not caps.admit(host):
            plain.abort()
            return
        http = FastClientCertProtocol(config=config, server_state=self.server_state,
                                      app_state=self.app_state, _loop=self.loop)
        if caps is not None:
            http.on_closed = functools.partial(caps.released, host)
        if config.tls is None:
            plain.set_protocol(http)
            http.connection_made(plain)
            return
        early = _Handshaking()
        config.handshaking.add(plain)
        _drive(self.loop.start_tls(plain, early, config.tls, server_side=True,
                                   ssl_handshake_timeout=config.handshake_timeout_s),
               functools.partial(self._secured, plain, peer, http, early))

    def _secured(self, plain: asyncio.Transport, peer: Any, http: FastClientCertProtocol,
                 early: _Handshaking, tls: asyncio.Transport | None,
                 error: BaseException | None) -> None:
        """The handshake is over: hand ``tls`` to ``http``, or, if it failed (``error``)
        or the client has already gone, close and give the connection's place back."""
        self.config.handshaking.discard(plain)
        # A connection lost mid-handshake without an error (a client's EOF, an abort) ends
        # start_tls without one on uvloop, with a transport already dead: look.
        if error is not None or tls is None or early.ended or plain.is_closing() \
                or tls.is_closing():
            (tls or plain).abort()
            http.closed()
            refused = self.config.on_handshake_refused
            if isinstance(error, ssl.SSLError) and refused is not None:
                refused(peer, error)
            return
        tls.set_protocol(http)
        http.connection_made(tls)
        for data in early.early:
            http.data_received(data)


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
        self._loop: asyncio.AbstractEventLoop | None = None
        self._nap: asyncio.Future[None] | None = None

    def request_stop(self) -> None:
        """Shut down (safe from any thread): ``should_exit``, and the main loop woken."""
        self.should_exit = True
        loop, nap = self._loop, self._nap
        if loop is not None and nap is not None and not loop.is_closed():
            loop.call_soon_threadsafe(_wake, nap)

    async def main_loop(self) -> None:
        """uvicorn's loop, ticking every TICK_S instead of every 0.1 s: with a KME per
        node, uvicorn's ten wake-ups a second per server were most of an idle process's
        CPU. A tick refreshes the Date header (to the second, as uvicorn does) and checks
        ``should_exit``; :meth:`request_stop` (which :func:`stop` calls) wakes it at once,
        a bare ``should_exit = True`` within TICK_S."""
        loop = self._loop = asyncio.get_running_loop()
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 10) % 864000  # uvicorn's on_tick refreshes when % 10 == 0
            nap = self._nap = loop.create_future()
            timer = loop.call_later(TICK_S, _wake, nap)
            try:
                await nap
            finally:
                timer.cancel()
                self._nap = None

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

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """uvicorn's, after aborting the handshakes under way: a connection not yet
        serving HTTP has nothing to finish (and its handshake must end while the loop
        still runs)."""
        handshaking: set[asyncio.Transport] = getattr(self.config, "handshaking", set())
        for transport in list(handshaking):
            transport.abort()
        await super().shutdown(sockets)

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        """Install nothing: several servers share a loop, and its owner handles signals."""
        yield


def make_server(app: ASGIApp, host: str, port: int, ssl_context: ssl.SSLContext | None, *,
                keep_alive_s: int = 30, shutdown_timeout_s: int = 5,
                header_timeout_s: float = HEADER_TIMEOUT_S,
                limits: ListenerLimits | None = None,
                budget: ConnectionBudget | None = None,
                on_handshake_refused: HandshakeRefused | None = None) -> TlsServer:
    """A server for ``app`` on ``host``:``port`` (0: any free port, see ``.port``) over TLS,
    or plain HTTP without ``ssl_context`` (the O&M endpoints, for Prometheus and browsers).

    With ``limits``, connections beyond them, or beyond ``budget`` (process-wide, shared by
    the servers given it), are closed on accept, before TLS (see
    :mod:`qkdnet.live.connection_limits`). ``on_handshake_refused`` is told of every failed
    TLS handshake (peer address, error).
    A request whose headers are not complete ``header_timeout_s`` after its first byte
    has its connection closed.

    HTTP/1.1 with keep-alive (idle connections, also ones that never send a request,
    closed after ``keep_alive_s``); no lifespan
    events, websockets, proxy headers or access log. uvicorn's loggers are set to warnings
    only and otherwise left to the application's logging setup.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family, backlog=1024)
    caps = None
    if limits is not None:
        caps = ListenerCaps(int(sock.getsockname()[1]), limits, budget or ConnectionBudget())
        sock = GuardedListener.around(sock, caps)
    try:
        config = LimitedConfig(
            app, host=host, port=int(sock.getsockname()[1]),
            http=ConnectionGate,
            ws="none", lifespan="off", log_config=None, log_level="warning", access_log=False,
            proxy_headers=False, timeout_keep_alive=keep_alive_s,
            timeout_graceful_shutdown=shutdown_timeout_s,
        )
        config.header_timeout_s = header_timeout_s
        config.tls, config.caps = ssl_context, caps
        config.handshaking = set[asyncio.Transport]()
        config.on_handshake_refused = on_handshake_refused
        return TlsServer(config, sock)
    except BaseException:
        sock.close()
        raise


def stop(servers: Iterable[uvicorn.Server]) -> None:
    """Ask every server to shut down (safe from any thread)."""
    for server in servers:
        if isinstance(server, TlsServer):
            server.request_stop()
        else:
            server.should_exit = True


def _wake(nap: asyncio.Future[None]) -> None:
    if not nap.done():
        nap.set_result(None)


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
