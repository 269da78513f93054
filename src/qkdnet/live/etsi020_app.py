"""The ETSI GS QKD 020 interop KMS API of one node at a domain border, as a plain ASGI
application (dispatched by hand, as :mod:`qkdnet.live.kme_app`).

- ``GET /kmapi/versions``: ``{"versions": ["v1"], "capabilities": ["synchronous_mode"]}``.
- ``POST /kmapi/v1/ext_keys``: with ``ack_callback_url`` (asynchronous mode) ``202`` as soon
  as the keys are held or refused here, the ``ack_containers`` then POSTed to the callback
  (retried with backoff, a bounded number of times); without it (synchronous mode) ``200``
  with the ``ack_containers``.
- ``POST /kmapi/v1/ext_keys/ack``: acknowledgements of keys this node pushed; ``200``.
- ``POST /kmapi/v1/ext_keys/void``: ``200`` with ``ack_containers``, or ``202`` and the
  acknowledgements POSTed to its ``ack_callback_url``.

The caller is the peer KMS named by its TLS client certificate's ``kme-id:`` URI
(:func:`qkdnet.live.pki.kme_id_from_certificate`); only the configured peers are served,
anyone else gets ``401`` before the body is read, so nothing is kept. Every error is an
RFC 9457 problem detail ``{type, status, title, details}`` (``application/problem+json``);
no key value appears in a reply other than none, a log line or an error.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from collections.abc import Awaitable, Callable, Collection, MutableMapping, Sequence
from typing import Any

import httpx

from qkdnet.errors import KeyStoreError
from qkdnet.keys.etsi020 import (
    Ack,
    ExtKey,
    ExtKeys,
    InteropKms,
    Problem,
    Received,
    acks_document,
    parse_acks,
    parse_ext_keys,
    parse_void,
)
from qkdnet.live.tls_server import calling_kme

log = logging.getLogger(__name__)

Message = MutableMapping[str, Any]
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Released = Callable[[Sequence[tuple[ExtKey, ExtKeys]]], None]
#: Relays keys on from this node to their target SAE's node: whether they are held there.
Onward = Callable[[ExtKeys, Sequence[ExtKey]], Awaitable[bool]]

VERSIONS = "/kmapi/versions"
EXT_KEYS = "/kmapi/v1/ext_keys"
ACK = "/kmapi/v1/ext_keys/ack"
VOID = "/kmapi/v1/ext_keys/void"
#: The largest body read (bytes): 1024 keys of 4 KiB base64 each, with room.
MAX_BODY_BYTES = 8 * 2**20
_METHODS = {VERSIONS: "GET", EXT_KEYS: "POST", ACK: "POST", VOID: "POST"}
_MALFORMED = {EXT_KEYS: "missing-parameters", ACK: "ack-not-understood",
              VOID: "void-request-not-understood"}


class CallbackPolicy:
    """How acknowledgements are POSTed to a callback: at most ``attempts`` tries, waiting
    ``first_wait_s`` after the first failure, doubling up to ``max_wait_s`` (s)."""

    def __init__(self, attempts: int = 5, first_wait_s: float = 0.2,
                 max_wait_s: float = 5.0, timeout_s: float = 10.0) -> None:
        self.attempts, self.first_wait_s = attempts, first_wait_s
        self.max_wait_s, self.timeout_s = max_wait_s, timeout_s

    def wait_s(self, failures: int) -> float:
        """The wait (s) after ``failures`` failed tries."""
        return float(min(self.max_wait_s, self.first_wait_s * 2 ** (failures - 1)))


class Etsi020App:
    """The interop KMS API of ``kms.node`` for the KMSs ``peers`` (an ASGI 3 app).

    ``clock()`` gives the driver's time (s); ``client_ssl`` is what callbacks are POSTed
    with (this node's KME certificate, trusting the CA); ``on_released`` is told of keys
    this node pushed once every target acknowledged them ``relayed``; ``onward`` relays the
    keys :meth:`InteropKms.receive` hands on (a gateway's KMS), which are acknowledged once
    that relay has ended.
    """

    def __init__(self, kms: InteropKms, peers: Collection[str], clock: Callable[[], float],
                 client_ssl: ssl.SSLContext, *, on_released: Released | None = None,
                 callbacks: CallbackPolicy | None = None, onward: Onward | None = None,
                 body_timeout_s: float = 10.0, max_body_bytes: int = MAX_BODY_BYTES) -> None:
        self.kms, self.peers, self.clock = kms, frozenset(peers), clock
        self.client_ssl = client_ssl
        self.on_released = on_released
        self.onward = onward
        self.callbacks = callbacks or CallbackPolicy()
        self.body_timeout_s = body_timeout_s
        self.max_body_bytes = max_body_bytes
        self.delivered: list[tuple[str, int]] = []  # (callback URL, HTTP status) each POST
        self._tasks: set[asyncio.Task[None]] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        try:
            status, document = await self._dispatch(scope, receive)
        except Problem as exc:
            status, document = exc.status, exc.document()
        except KeyStoreError as exc:  # the store or ledger failed: the caller must retry/void
            log.warning("interop KMS %s: %s", self.kms.node, exc)
            exc2 = Problem(503, "server-side-general-error", "key store unavailable")
            status, document = exc2.status, exc2.document()
        except Exception:  # a bug, never an input
            log.exception("interop KMS %s: internal error on %s %s", self.kms.node,
                          scope.get("method"), scope.get("path"))
            exc3 = Problem(503, "server-side-general-error", "internal error")
            status, document = exc3.status, exc3.document()
        body = json.dumps(document, separators=(",", ":")).encode()
        kind = b"application/problem+json" if status >= 400 else b"application/json"
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", kind),
                                (b"content-length", b"%d" % len(body))]})
        await send({"type": "http.response.body", "body": body})

    async def _dispatch(self, scope: Scope, receive: Receive) -> tuple[int, Any]:
        path, method = scope["path"], scope["method"]
        if path not in _METHODS:
            return 404, _plain(404, "Not Found")
        if method != _METHODS[path]:
            return 405, _plain(405, "Method Not Allowed")
        peer = self._peer(scope)
        if path == VERSIONS:
            return 200, {"versions": ["v1"], "capabilities": ["synchronous_mode"]}
        body = await self._body(receive, _MALFORMED[path])
        now = self.clock()
        if path == EXT_KEYS:
            request = parse_ext_keys(body, self.kms.limits)
            received = self.kms.receive(peer, request, now)
            log.info("interop KMS %s: %d keys from %s: %s", self.kms.node, len(request.keys),
                     peer, ", ".join([*(f"{len(a.key_ids)} {a.status}" for a in received.acks),
                                      *([f"{len(received.onward)} relayed on"]
                                        if received.onward else [])]))
            if received.onward:
                return await self._relay_on(request, received)
            return self._answer(request.callback_url, received.acks)
        if path == ACK:
            released = self.kms.acknowledge(peer, parse_acks(body, self.kms.limits), now)
            if released and self.on_released is not None:
                self.on_released(released)
            return 200, {}
        void = parse_void(body, self.kms.limits)
        return self._answer(void.callback_url, self.kms.void(peer, void, now))

    async def _relay_on(self, request: ExtKeys, received: Received) -> tuple[int, Any]:
        """Relay the keys ``received`` hands on; acknowledge them once that has ended, in
        the reply (synchronous mode) or at the callback (asynchronous: ``202`` at once)."""
        async def relayed() -> tuple[Ack, ...]:
            ok = False
            try:
                ok = self.onward is not None and await self.onward(request, received.onward)
            except Exception:  # the relay's own failure: the keys are failed, not lost
                log.exception("interop KMS %s: relay onward failed", self.kms.node)
            return self.kms.forwarded([k.key_id for k in received.onward], ok, self.clock(),
                                      None if ok else "relay to the target's node failed")

        if request.callback_url is None:
            return 200, acks_document([*received.acks, *await relayed()])
        url = request.callback_url

        async def later() -> None:
            await self._post(url, [*received.acks, *await relayed()])

        task = asyncio.get_running_loop().create_task(later())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return 202, {}

    def _answer(self, callback: str | None, acks: Sequence[Ack]) -> tuple[int, Any]:
        if callback is None:
            return 200, acks_document(acks)
        task = asyncio.get_running_loop().create_task(self._post(callback, acks))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return 202, {}

    async def _post(self, url: str, acks: Sequence[Ack]) -> None:
        """POST ``acks`` to ``url``, retried with backoff; given up after the policy's
        attempts (the peer must then retry or void)."""
        policy = self.callbacks
        async with httpx.AsyncClient(verify=self.client_ssl,
                                     timeout=policy.timeout_s) as client:
            for attempt in range(1, policy.attempts + 1):
                try:
                    reply = await client.post(url, json=acks_document(acks))
                    self.delivered.append((url, reply.status_code))
                    if reply.is_success or 400 <= reply.status_code < 500:
                        return  # taken, or refused as malformed: trying again won't help
                except httpx.HTTPError as exc:
                    log.info("interop KMS %s: callback %s: %s", self.kms.node, url,
                             type(exc).__name__)
                if attempt < policy.attempts:
                    await asyncio.sleep(policy.wait_s(attempt))
        log.warning("interop KMS %s: callback %s not reached after %d attempts",
                    self.kms.node, url, policy.attempts)

    async def idle(self) -> None:
        """Wait until every callback POST under way has finished."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _peer(self, scope: Scope) -> str:
        """The calling peer KMS, or Problem 401 saying why not."""
        peer = calling_kme(scope)
        if peer is None:
            raise Problem(401, "unauthorized", "no KME client certificate")
        if peer not in self.peers:
            raise Problem(401, "unauthorized", f"KMS {peer!r} is not a peer of "
                          f"{self.kms.node!r}")
        return peer

    async def _body(self, receive: Receive, kind: str) -> Any:
        """The JSON body; Problem 408 if it does not arrive whole in time, 413 if over
        ``max_body_bytes``, 400 ``kind`` if it is not JSON."""
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.body_timeout_s):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        raise Problem(408, "timeout", "the request ended before its body")
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > self.max_body_bytes:
                        raise Problem(413, "about:blank",
                                      f"body over {self.max_body_bytes} bytes")
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        break
        except TimeoutError:
            raise Problem(408, "timeout", "the request body did not arrive in time") from None
        try:
            return json.loads(b"".join(chunks), parse_constant=_no_constant)
        except (ValueError, RecursionError):
            raise Problem(400, kind, "body is not valid JSON") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _plain(status: int, title: str) -> dict[str, Any]:
    return {"type": "about:blank", "status": status, "title": title, "details": {}}


def make_etsi020_app(kms: InteropKms, peers: Collection[str], clock: Callable[[], float],
                     client_ssl: ssl.SSLContext, **options: Any) -> Etsi020App:
    """The interop KMS API of ``kms.node`` (see :class:`Etsi020App`)."""
    return Etsi020App(kms, peers, clock, client_ssl, **options)
