"""KM-to-KM over mutual TLS, the sending side: messages for Key Managers of other processes
go out in batches, one outbox per (sending node, receiving process), each posted to the
receiving process's KM listener (:mod:`qkdnet.live.km_app`) and sent again until that
process acknowledges it (HTTP 200, given once what it did with the batch has committed).

Each sending node presents its own node certificate from ``qkdnet pki`` (a KME
certificate: ``kme:<node>`` URI, clientAuth), so the receiver knows who sends without
trusting the batch. Every message carries an id (this outbox's incarnation, a sequence
number): a batch sent again after a lost acknowledgement is recognised and not done twice.
Order is kept per outbox. A message not acknowledged within ``give_up_s`` (the receiving
process down for longer than a relay may take) is dropped and counted: the relay's source
has failed it by then on its own timer, and a late hop could only be refused. The sender
may name a message itself (a relay's messages are kept in the sending node's store under
their id until acknowledged, and sent again under it after a restart:
:meth:`~qkdnet.live.keynet.KeyNetwork.resend_kept`); ``on_settled`` hears of each such
message once it is acknowledged or dropped.

Each process is probed (``GET /km/v1/health``) when it has not answered for
PROBE_INTERVAL_S; one that has not answered for DOWN_AFTER_S counts as down
(:meth:`RemoteKMs.down_nodes`), so the KM-links to its nodes are reported down and routes
go round it; its first answer brings it back.

The one-time pad makes the relay's content safe on any wire; TLS adds who-is-who,
integrity of the framing and confidentiality of the metadata (key_IDs, SAEs, routes).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import secrets
import ssl
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from qkdnet.keys.km_wire import MAX_MESSAGES, Envelope, encode_batch
from qkdnet.keys.supply_sync import KmMessage
from qkdnet.live.http_client import LeanClient, NoReply

log = logging.getLogger("qkdnet.km")

#: Where a process's KM listener takes batches, and answers health probes.
KM_PATH = "/km/v1/messages"
HEALTH_PATH = "/km/v1/health"
#: How often a process not heard from is probed (s), and after how long without an answer
#: it counts as down (s): neighbours know a dead process within DOWN_AFTER_S + a probe.
PROBE_INTERVAL_S = 1.0
DOWN_AFTER_S = 3.0
#: First and longest wait (s) before a batch is sent again.
RETRY_FIRST_S = 0.05
RETRY_MAX_S = 1.0
#: Replies that say the batch itself is refused: sending it again cannot help.
REFUSED = frozenset({400, 401, 403, 404, 405, 413})


@dataclass
class _Outbox:
    sender: str
    url: str
    client: LeanClient
    #: (envelope, when queued (loop s), whether the transport named it)
    queue: deque[tuple[Envelope, float, bool]] = field(default_factory=deque)
    task: asyncio.Task[None] | None = None


class RemoteKMs:
    """Sends messages to the KMs of nodes in ``peers`` (node -> base URL of the KM listener
    of the process that hosts it, ``https://host:port``), each sending node with the TLS
    client context ``context_for(node)`` gives (its node certificate, the network's CA).

    ``on_lost(to, message)`` is told of each message dropped (refused by the receiver, or
    not acknowledged within ``give_up_s`` s); ``on_settled(sender, id)`` of each message
    sent with an id of the sender's once it is acknowledged or dropped; ``timeout_s``
    bounds one post (s).
    """

    def __init__(self, peers: Mapping[str, str], context_for: Callable[[str], ssl.SSLContext],
                 *, give_up_s: float = 10.0, timeout_s: float = 5.0,
                 on_lost: Callable[[str, KmMessage], None] | None = None,
                 on_settled: Callable[[str, str], None] | None = None) -> None:
        self._peers = dict(peers)
        self._context_for = context_for
        self._give_up_s = give_up_s
        self._timeout_s = timeout_s
        self._on_lost = on_lost
        self.on_settled = on_settled
        self._contexts: dict[str, ssl.SSLContext] = {}
        self._outboxes: dict[tuple[str, str], _Outbox] = {}
        self._incarnation = secrets.token_hex(8)
        self._sequence = itertools.count()
        self._heard: dict[str, float] = {}  # process URL -> when it last answered (loop s)
        self._started: float | None = None
        #: Messages acknowledged, posts sent again, and messages dropped, since start.
        self.delivered = 0
        self.retries = 0
        self.lost = 0

    def hosts(self, node: str) -> bool:
        """Whether ``node``'s KM is reachable through this transport."""
        return node in self._peers

    def send(self, sender: str, to: str, message: KmMessage, ident: str | None = None,
             age_s: float = 0.0) -> None:
        """Queue ``message`` from the KM of ``sender`` to the KM of ``to``; it is posted at
        the loop's next turn with whatever else is queued for the same process by then.
        ``ident``: the sender's id for it (default: a new one of this transport's), kept
        ``age_s`` s already (counted against ``give_up_s``)."""
        url = self._peers.get(to)
        if url is None:
            self._drop(Envelope(ident or "", to, message), sender,
                       f"no process is known for node {to}", settle=ident is not None)
            return
        box = self._outboxes.get((sender, url))
        if box is None:
            box = self._outboxes[(sender, url)] = _Outbox(
                sender, url, LeanClient(url, self._context(sender), timeout_s=self._timeout_s))
        loop = asyncio.get_running_loop()
        own = ident is None
        if ident is None:
            ident = f"{self._incarnation}:{next(self._sequence)}"
        box.queue.append((Envelope(ident, to, message), loop.time() - age_s, own))
        if box.task is None or box.task.done():
            box.task = loop.create_task(self._drain(box))

    def down_nodes(self, now: float, after_s: float = DOWN_AFTER_S) -> set[str]:
        """The nodes whose process has not answered for ``after_s`` (s) at ``now`` (a
        process never heard from counts from the transport's first probe)."""
        start = self._started if self._started is not None else now
        quiet = {url for url in set(self._peers.values())
                 if now - self._heard.get(url, start) >= after_s}
        return {node for node, url in self._peers.items() if url in quiet}

    async def watch(self, prober: str, interval_s: float = PROBE_INTERVAL_S) -> None:
        """Probe every process not heard from for ``interval_s``, as node ``prober``
        (with its certificate), until cancelled."""
        loop = asyncio.get_running_loop()
        self._started = loop.time()
        clients = {url: LeanClient(url, self._context(prober), timeout_s=interval_s)
                   for url in set(self._peers.values())}
        try:
            while True:
                now = loop.time()
                quiet = [url for url in clients
                         if now - self._heard.get(url, -math.inf) >= interval_s]
                await asyncio.gather(*(self._probe(url, clients[url]) for url in quiet))
                await asyncio.sleep(interval_s / 2)
        finally:
            for client in clients.values():
                await client.aclose()

    async def _probe(self, url: str, client: LeanClient) -> None:
        try:
            reply = await client.get(HEALTH_PATH)
        except NoReply:
            return
        if reply.status_code == 200:
            self._heard[url] = asyncio.get_running_loop().time()

    def _context(self, node: str) -> ssl.SSLContext:
        context = self._contexts.get(node)
        if context is None:
            context = self._contexts[node] = self._context_for(node)
        return context

    @property
    def queued(self) -> int:
        """Messages waiting to be acknowledged."""
        return sum(len(box.queue) for box in self._outboxes.values())

    async def close(self) -> None:
        """Stop sending (what is queued is dropped, uncounted) and close the connections."""
        for box in self._outboxes.values():
            if box.task is not None:
                box.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await box.task
            await box.client.aclose()
        self._outboxes.clear()

    async def _drain(self, box: _Outbox) -> None:
        """Post the outbox's messages in order, in batches, until none is left."""
        await asyncio.sleep(0)  # let this turn's other sends join the first batch
        delay = RETRY_FIRST_S
        loop = asyncio.get_running_loop()
        while box.queue:
            while box.queue and loop.time() - box.queue[0][1] > self._give_up_s:
                envelope, _, own = box.queue.popleft()
                self._drop(envelope, box.sender,
                           f"not acknowledged by {box.url} within {self._give_up_s:g} s",
                           settle=not own)
            batch = [e for e, _, _ in itertools.islice(box.queue, MAX_MESSAGES)]
            if not batch:
                return
            status, why = await self._post(box, batch)
            if status:
                self._heard[box.url] = loop.time()  # it answered: it is up
            if status == 200:
                for _ in batch:
                    envelope, _, own = box.queue.popleft()
                    if not own and self.on_settled is not None:
                        self.on_settled(box.sender, envelope.id)
                self.delivered += len(batch)
                delay = RETRY_FIRST_S
            elif status in REFUSED:
                for _ in batch:
                    envelope, _, own = box.queue.popleft()
                    self._drop(envelope, box.sender, f"refused by {box.url} ({status}): {why}",
                               settle=not own)
            else:
                self.retries += 1
                await asyncio.sleep(delay)
                delay = min(2 * delay, RETRY_MAX_S)

    async def _post(self, box: _Outbox, batch: list[Envelope]) -> tuple[int, str]:
        """(HTTP status, short reason) of posting ``batch``; status 0 for no reply."""
        try:
            reply = await box.client.post_bytes(KM_PATH, encode_batch(box.sender, batch))
        except NoReply as exc:
            return 0, str(exc)
        return reply.status_code, reply.content[:200].decode("utf-8", "replace")

    def _drop(self, envelope: Envelope, sender: str, why: str, settle: bool) -> None:
        self.lost += 1
        log.warning("KM message %s for node %s dropped: %s", type(envelope.message).__name__,
                    envelope.to, why)
        if self._on_lost is not None:
            self._on_lost(envelope.to, envelope.message)
        if settle and self.on_settled is not None:
            self.on_settled(sender, envelope.id)
