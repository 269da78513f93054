"""The EMS of one region as a service: node processes push their nodes' telemetry to it,
and it forwards it north to the NMS (:mod:`qkdnet.live.nms_service`).

``POST /ems/v1/telemetry``
    One node's record (:mod:`qkdnet.live.telemetry_records`), over mutual TLS with the
    node's certificate (``kme-id:<node>``). Refused with 401 when the certificate names
    no identity; 403 when it names no node of the network, a node of another region than
    this EMS's, or another node than the record's (a node pushes only its own telemetry),
    or when the record speaks for a QKD-link or KM-link the node is not an end of; 400
    naming the field when malformed. Answers ``{"queued": n}``.
``GET /ems/v1/health``
    ``{"status": "ok", "region", "taken", "queued", "forwarded", "dropped",
    "nms_lost_since"}``.

North. :class:`EmsForwarder` sends what was taken to the NMS every ``interval_s`` (1 s),
in batches of at most :data:`BATCH_RECORDS` records and :data:`BATCH_BYTES` of JSON
(``{"region": R, "records": [...]}``; the NMS takes at most 4 MiB),
each tried ``1 + retries`` times; what got no answer stays queued for the next tick (a
batch the NMS refuses, 4xx, is dropped and counted: it would be refused again). The
queue is bounded (:data:`QUEUE_RECORDS`): while the NMS is away the oldest
records are dropped first, and counted (``dropped``), so the EMS's memory stays bounded
and the NMS, once back, gets the newest state.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
from collections import deque
from typing import Any

from qkdnet.keys.etsi014 import ApiError
from qkdnet.live.background_caller import BackgroundCaller
from qkdnet.live.http_client import LeanClient, NoReply
from qkdnet.live.request_limits import BodyLimit
from qkdnet.live.service_calls import (
    Receive,
    Scope,
    Send,
    endpoint,
    json_body,
    peer_id,
    respond,
)
from qkdnet.live.telemetry_records import check_ends, parse_record
from qkdnet.topology.model import Network

__all__ = ["BATCH_RECORDS", "HEALTH_PATH", "QUEUE_RECORDS", "TELEMETRY_PATH",
           "EmsForwarder", "EmsService", "make_ems_app"]

log = logging.getLogger("qkdnet.management")

TELEMETRY_PATH = "/ems/v1/telemetry"
HEALTH_PATH = "/ems/v1/health"
#: Records an EMS keeps for the NMS at most; past it the oldest go first (counted).
QUEUE_RECORDS = 10_000
#: Records in one batch north at most (a cn-qcn record is ~1 KB: batches stay < 1 MB).
BATCH_RECORDS = 500
#: JSON in one batch north at most (bytes; one record goes alone however large): records
#: that carry many SAE pairs' counts are larger, and the NMS takes at most 4 MiB.
BATCH_BYTES = 2 * 2**20
#: Largest record a node may push (bytes): its links, and its KME's counts of every SAE
#: pair it serves an end of (~1 KB a pair).
RECORD_MAX_BYTES = 512 * 1024
#: The NMS paths the forwarder posts to (served by :mod:`qkdnet.live.nms_service`).
NMS_BATCHES_PATH = "/nms/v1/batches"
_ENDPOINTS = {TELEMETRY_PATH: "POST", HEALTH_PATH: "GET"}
_REFUSED = frozenset({400, 401, 403, 404, 405, 413})


class EmsService:
    """The EMS of ``region`` of ``network`` behind the protocol of the module docstring;
    records taken wait in :attr:`queue` (at most ``queue_records``) for the forwarder."""

    def __init__(self, network: Network, region: str,
                 queue_records: int = QUEUE_RECORDS) -> None:
        self.network, self.region = network, region
        self.nodes = frozenset(n.id for n in network.nodes if n.region == region)
        #: (sequence number, record as JSON-ready data, its JSON's bytes), oldest first.
        self.queue: deque[tuple[int, dict[str, Any], int]] = deque(maxlen=queue_records)
        self._sequence = 0
        #: Records taken, forwarded to the NMS and dropped unsent, since start.
        self.taken = self.forwarded = self.dropped = 0
        #: When the NMS stopped taking batches (s since the epoch); None while it does.
        self.nms_lost_since: float | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await respond(send, self._handle(scope, receive), "EMS")

    async def _handle(self, scope: Scope, receive: Receive) -> tuple[int, dict[str, Any]]:
        path = endpoint(scope, _ENDPOINTS)
        peer = peer_id(scope)
        if peer not in self.network.node:
            raise ApiError(403, f"the client certificate names {peer!r}, not a node of "
                                f"network {self.network.name!r}")
        if path == HEALTH_PATH:
            return 200, self.health()
        return 200, self.take(peer, await json_body(receive))

    def take(self, peer: str, document: Any) -> dict[str, Any]:
        """Queue the record ``document`` pushed by node ``peer`` (the certificate's): 403
        unless it is of ``peer``, ``peer`` is of this region and an end of every link it
        reports; 400 naming the field if malformed. Nothing is queued from a refused one."""
        record = parse_record(document, self.network)
        if peer not in self.nodes:
            raise ApiError(403, f"node {peer!r} is in region "
                                f"{self.network.node[peer].region!r}, not {self.region!r}: "
                                "push to that region's EMS")
        if record.node != peer:
            raise ApiError(403, f"node: the client certificate names node {peer!r}, the "
                                f"record is of {record.node!r}")
        check_ends(record, self.network)
        if len(self.queue) == self.queue.maxlen:
            self.dropped += 1  # the append below pushes the oldest out
        self._sequence += 1
        kept = record.document()
        self.queue.append((self._sequence, kept, len(json.dumps(kept))))
        self.taken += 1
        return {"queued": len(self.queue)}

    def batch(self, limit: int = BATCH_RECORDS, limit_bytes: int = BATCH_BYTES
              ) -> tuple[int, list[dict[str, Any]]]:
        """The oldest records queued, at most ``limit`` of them and ``limit_bytes`` of JSON
        (at least one), and the sequence number of the last (0 if none); they stay queued
        until :meth:`forwarded_up_to`."""
        records: list[dict[str, Any]] = []
        last, size = 0, 0
        for sequence, record, length in self.queue:
            if len(records) == limit or (records and size + length > limit_bytes):
                break
            records.append(record)
            last, size = sequence, size + length
        return last, records

    def forwarded_up_to(self, sequence: int) -> None:
        """The NMS took every record up to ``sequence``: unqueue them (those dropped
        meanwhile are gone already)."""
        while self.queue and self.queue[0][0] <= sequence:
            self.queue.popleft()
            self.forwarded += 1

    def health(self) -> dict[str, Any]:
        """What the EMS has done, in counts."""
        return {"status": "ok", "region": self.region, "taken": self.taken,
                "queued": len(self.queue), "forwarded": self.forwarded,
                "dropped": self.dropped, "nms_lost_since": self.nms_lost_since}


class EmsForwarder(BackgroundCaller):
    """Sends ``service``'s queued records to the NMS at ``base_url`` every ``interval_s``
    with TLS client context ``context`` (the EMS's certificate); a batch that gets no
    answer is tried ``retries`` more times, ``retry_s`` apart, then left queued for the
    next tick. Times in s."""

    def __init__(self, service: EmsService, base_url: str, context: ssl.SSLContext, *,
                 interval_s: float = 1.0, retries: int = 2, retry_s: float = 0.1,
                 timeout_s: float = 5.0) -> None:
        self.service = service
        super().__init__(LeanClient(base_url, context, timeout_s=timeout_s),
                         f"ems-forward:{service.region}")
        self.interval_s, self.retries, self.retry_s = interval_s, retries, retry_s

    async def forward_now(self) -> bool:
        """Send everything queued now, batch by batch; whether the NMS took it all."""
        service = self.service
        while service.queue:
            last, records = service.batch()
            body = json.dumps({"region": service.region, "records": records},
                              separators=(",", ":")).encode()
            outcome = await self._send(body)
            if outcome == "refused":  # the same batch would be refused again: drop it
                before = len(service.queue)
                service.forwarded_up_to(last)
                service.forwarded -= before - len(service.queue)
                service.dropped += before - len(service.queue)
                continue
            if outcome == "lost":
                if service.nms_lost_since is None:
                    service.nms_lost_since = time.time()
                    log.warning("EMS %s: NMS not taking telemetry; queueing (at most %d "
                                "records, the oldest dropped first)", service.region,
                                service.queue.maxlen)
                return False
            service.forwarded_up_to(last)
            if service.nms_lost_since is not None:
                service.nms_lost_since = None
                log.info("EMS %s: NMS back", service.region)
        return True

    async def _send(self, body: bytes) -> str:
        """"taken", "refused" (the NMS answered no) or "lost" (no answer)."""
        for attempt in range(1 + self.retries):
            if attempt:
                await asyncio.sleep(self.retry_s)
            try:
                reply = await self._client.post_bytes(NMS_BATCHES_PATH, body)
            except NoReply:
                continue
            if reply.status_code == 200:
                return "taken"
            if reply.status_code in _REFUSED:
                log.error("EMS %s: the NMS refused a batch (dropped): HTTP %d %s",
                          self.service.region, reply.status_code,
                          reply.content[:200].decode(errors="replace"))
                return "refused"
        return "lost"

    async def _run(self) -> None:
        await self._every(self.interval_s, self.forward_now)


def make_ems_app(service: EmsService, max_body_bytes: int = RECORD_MAX_BYTES) -> BodyLimit:
    """``service`` behind the body cap (bytes): serve it with
    :func:`~qkdnet.live.tls_server.make_server` and a
    :func:`~qkdnet.live.tls_server.server_ssl_context`."""
    return BodyLimit(service, max_bytes=max_body_bytes)
