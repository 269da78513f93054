"""KM-to-KM over mutual TLS, the receiving side: the KM listener of a process, an ASGI app
taking batches of Key Manager messages (:mod:`qkdnet.keys.km_wire`) at ``POST
/km/v1/messages`` for the nodes the process hosts, and answering the other processes'
health probes at ``GET /km/v1/health`` (the nodes it hosts).

The sending node is the one its client certificate names (``kme:<node>``, from the
network's CA; an SAE's certificate names none and is refused with 401), and every message
of the batch must come from it and go to a node hosted here, or nothing of the batch is
done (401, or 400 naming the problem). The batch is handed to ``deliver`` (the process's
:meth:`~qkdnet.live.keynet.KeyNetwork.receive`), which answers once what the messages did
to the key stores has committed; only then is the batch acknowledged (200). A message
``deliver`` could not commit (a store fault: 503) is not acknowledged and is done again
when the sender retries. A message already done (a retry after a lost acknowledgement, by
its id) is acknowledged without being done again; one still being done is waited for.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Collection, MutableMapping, Sequence
from typing import Any

from qkdnet.keys.etsi014 import ApiError
from qkdnet.keys.km_wire import MAX_BATCH_BYTES, Envelope, WireError, decode_batch
from qkdnet.live.km_transport import HEALTH_PATH, KM_PATH
from qkdnet.live.request_limits import BodyLimit
from qkdnet.live.service_calls import respond
from qkdnet.live.tls_server import calling_kme

log = logging.getLogger("qkdnet.km")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
#: ``deliver(sender, envelopes)``: do the messages; the ids of those not committed.
Deliver = Callable[[str, Sequence[Envelope]], Awaitable[list[str]]]

#: Message ids remembered as done, per process (the oldest forgotten first): far more than
#: a sender can have unacknowledged when it retries.
REMEMBERED = 65_536


class KmApp:
    """The KM listener of a process hosting ``hosted`` nodes; see the module docstring."""

    def __init__(self, deliver: Deliver, hosted: Collection[str]) -> None:
        self._deliver = deliver
        self._hosted = frozenset(hosted)
        self._done: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._busy: dict[tuple[str, str], asyncio.Future[bool]] = {}
        #: Batches and messages taken, and messages recognised as already done.
        self.batches = 0
        self.messages = 0
        self.duplicates = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await respond(send, self._handle(scope, receive), "KM listener")

    async def _handle(self, scope: Scope, receive: Receive) -> tuple[int, dict[str, Any]]:
        if scope["path"] == HEALTH_PATH and scope["method"] == "GET":
            self._peer(scope)  # only the network's nodes ask
            return 200, {"nodes": sorted(self._hosted)}
        if scope["path"] != KM_PATH:
            return 404, {"message": "Not Found"}
        if scope["method"] != "POST":
            return 405, {"message": "Method Not Allowed"}
        peer = self._peer(scope)
        chunks = []
        more = True
        while more:
            message = await receive()  # behind BodyLimit: ApiError 413 past the cap
            if message["type"] == "http.disconnect":
                raise ApiError(400, "the sender went away before its batch was complete")
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        try:
            sender, envelopes = decode_batch(b"".join(chunks))
        except WireError as exc:
            raise ApiError(400, f"malformed batch: {exc}") from None
        if sender != peer:
            raise ApiError(401, f"the client certificate names node {peer!r}, the batch is "
                                f"from {sender!r}")
        stray = sorted({e.to for e in envelopes} - self._hosted)
        if stray:
            raise ApiError(400, f"node {stray[0]!r} is not served by this process")
        failed = await self._once(sender, envelopes)
        if failed:
            raise ApiError(503, f"{failed} of {len(envelopes)} messages could not be "
                                "committed here; send them again")
        return 200, {"accepted": len(envelopes)}

    def _peer(self, scope: Scope) -> str:
        """The node the client certificate names; ApiError 401 if it names none."""
        node = calling_kme(scope)
        if node is None:
            raise ApiError(401, "the client certificate names no node (kme: URI)")
        return node

    async def _once(self, sender: str, envelopes: Sequence[Envelope]) -> int:
        """Do each message not done before (waiting for those being done now); how many of
        the batch are not done."""
        fresh: list[Envelope] = []
        waits: list[asyncio.Future[bool]] = []
        loop = asyncio.get_running_loop()
        for e in envelopes:
            key = (sender, e.id)
            if key in self._done:
                self.duplicates += 1
            elif key in self._busy:
                self.duplicates += 1
                waits.append(self._busy[key])
            else:
                self._busy[key] = loop.create_future()
                fresh.append(e)
        self.batches += 1
        self.messages += len(fresh)
        failed: set[str] = set(fresh_e.id for fresh_e in fresh)
        try:
            failed = set(await self._deliver(sender, fresh)) if fresh else set()
        finally:
            for e in fresh:
                key = (sender, e.id)
                ok = e.id not in failed
                self._busy.pop(key).set_result(ok)
                if ok:
                    self._remember(key)
        others = [await w for w in waits]
        return len(failed) + others.count(False)

    def _remember(self, key: tuple[str, str]) -> None:
        self._done[key] = None
        if len(self._done) > REMEMBERED:
            self._done.popitem(last=False)


def make_km_app(deliver: Deliver, hosted: Collection[str]) -> BodyLimit:
    """The KM listener app of a process hosting ``hosted`` nodes, behind the body cap."""
    return BodyLimit(KmApp(deliver, hosted), max_bytes=MAX_BATCH_BYTES)
