"""The devices service's side of the NMS for the satellite segment it flies:
:class:`SatelliteReporter` posts a :class:`~qkdnet.live.satellite_records.SatelliteReport`
to the NMS's intake (``POST /nms/v1/satellite``, :mod:`qkdnet.live.nms_service`) every
second, over mutual TLS with the devices service's certificate. The pools and passes under
way are read at each push (the latest is all that matters); the passes that ended are kept
and sent again until the NMS takes a report, so an NMS that was away still learns of
every pass (and raises ``satellite-pass-no-key`` for a night pass that left none).
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl

from qkdnet.live.background_caller import BackgroundCaller
from qkdnet.live.http_client import LeanClient, NoReply
from qkdnet.live.satellite_records import SATELLITE_PATH, SatelliteReport
from qkdnet.live.satellite_supply import SatelliteSupply
from qkdnet.quantum.satellite_pass import SatellitePass

log = logging.getLogger("qkdnet.management")

#: Most ended passes kept for an NMS that is away (the oldest go first): weeks of passes.
KEPT_PASSES = 5000


class SatelliteReporter(BackgroundCaller):
    """Posts ``supply``'s report to the NMS at ``base_url`` every ``interval_s`` (s) with
    the TLS client context ``context``."""

    def __init__(self, base_url: str, context: ssl.SSLContext, supply: SatelliteSupply,
                 *, interval_s: float = 1.0, timeout_s: float = 2.0) -> None:
        super().__init__(LeanClient(base_url, context, timeout_s=timeout_s), "nms-satellite")
        self.supply, self.interval_s = supply, interval_s
        self._ended: list[tuple[SatellitePass, float]] = []
        #: Reports the NMS took since start.
        self.sent = 0

    def report(self, now: float) -> SatelliteReport:
        """The report at loop time ``now`` (s): the passes that ended since the last taken
        report included."""
        supply = self.supply
        self._ended += [(o.scheduled, o.yielded_bits) for o in supply.take_ended(0.0)]
        del self._ended[:-KEPT_PASSES]
        return SatelliteReport(supply.start_utc, supply.clock_s(now), supply.speedup,
                               supply.pool_levels(), tuple(supply.in_progress(now)),
                               tuple(self._ended))

    async def push_now(self) -> bool:
        """Push the report now; whether the NMS took it."""
        report = self.report(asyncio.get_running_loop().time())
        body = json.dumps(report.document(), separators=(",", ":")).encode()
        try:
            reply = await self._client.post_bytes(SATELLITE_PATH, body)
        except NoReply:
            return False
        if reply.status_code != 200:
            log.error("NMS refused the satellite report: HTTP %d %s", reply.status_code,
                      reply.content[:200].decode(errors="replace"))
            return False
        del self._ended[:len(report.ended)]  # taken; those ended meanwhile go next time
        self.sent += 1
        return True

    async def _run(self) -> None:
        await self._every(self.interval_s, self.push_now)
