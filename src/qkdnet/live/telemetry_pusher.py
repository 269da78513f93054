"""A node process's side of its region's EMS (:mod:`qkdnet.live.ems_service`):
:class:`TelemetryPusher` posts one node's telemetry record every second.

The record is read when it is sent (the latest state is all that matters), each push is
tried at most ``1 + retries`` times, and nothing queues in the node while its EMS is away:
the next tick pushes afresh. A push the EMS refuses (4xx) is logged, not retried.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from collections.abc import Callable

from qkdnet.live.background_caller import BackgroundCaller
from qkdnet.live.ems_service import TELEMETRY_PATH
from qkdnet.live.http_client import LeanClient, NoReply
from qkdnet.live.telemetry_records import NodeRecord

__all__ = ["TelemetryPusher"]

log = logging.getLogger("qkdnet.management")

_REFUSED = frozenset({400, 401, 403, 404, 405, 413})


class TelemetryPusher(BackgroundCaller):
    """Posts node ``node``'s record (``record()``, read at each push) to the EMS at
    ``base_url`` every ``interval_s`` with TLS client context ``context`` (the node's
    certificate); a push that gets no answer is tried ``retries`` more times, ``retry_s``
    apart. Times in s."""

    def __init__(self, base_url: str, node: str, context: ssl.SSLContext,
                 record: Callable[[], NodeRecord], *, interval_s: float = 1.0,
                 retries: int = 1, retry_s: float = 0.1, timeout_s: float = 2.0) -> None:
        super().__init__(LeanClient(base_url, context, timeout_s=timeout_s),
                         f"ems-push:{node}")
        self.node, self._record = node, record
        self.interval_s, self.retries, self.retry_s = interval_s, retries, retry_s
        #: Pushes the EMS took, and pushes given up on, since start.
        self.sent = self.failed = 0

    async def push_now(self) -> bool:
        """Push the current record now; whether the EMS took it."""
        for attempt in range(1 + self.retries):
            if attempt:
                await asyncio.sleep(self.retry_s)
            body = json.dumps(self._record().document(), separators=(",", ":")).encode()
            try:
                reply = await self._client.post_bytes(TELEMETRY_PATH, body)
            except NoReply:
                continue
            if reply.status_code == 200:
                self.sent += 1
                return True
            if reply.status_code in _REFUSED:
                log.error("EMS refused the telemetry of node %s: HTTP %d %s", self.node,
                          reply.status_code, reply.content[:200].decode(errors="replace"))
                break
        self.failed += 1
        return False

    async def _run(self) -> None:
        await self._every(self.interval_s, self.push_now)
