"""What the NMS knows of the satellite segment (sans-I/O): the key in each satellite's pool
with each ground station, the passes in progress and the outcome of each pass that ended.

A driver that emulates passes (``qkdnet serve``) reports them through
:meth:`qkdnet.management.monitor.NetworkMonitor.report_satellite`, which keeps this state on
the NMS (:attr:`qkdnet.management.nms.Nms.satellite`) and feeds the alarm rule
``satellite-pass-no-key``: a pass scheduled at night with key (the orbit model predicted
some) that ended without any raises it on the ground station; the next pass there that
yields key clears it. The Prometheus exposition (:mod:`qkdnet.management.metrics`) and the
O&M view (:meth:`qkdnet.management.om_view.OmView.satellite`) read it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from qkdnet.quantum.satellite_pass import SatellitePass

#: Ended passes the NMS keeps for the O&M view (the counters keep every pass).
RECENT_PASSES = 64

Cell = tuple[str, str]  # (satellite, ground station)


@dataclass(frozen=True, slots=True)
class PassOutcome:
    """A pass that ended: the pass as scheduled (its ``key_bits`` the key the orbit model
    predicted, bits; times in s on the satellite clock), the key it actually left in the
    pool (``yielded_bits``) and the NMS time it ended at (``t``, s since the epoch)."""

    scheduled: SatellitePass
    yielded_bits: float
    t: float

    @property
    def night(self) -> bool:
        """Whether it was scheduled to make key (at night, high enough)."""
        return self.scheduled.key_bits > 0

    @property
    def no_key(self) -> bool:
        """A pass scheduled to make key that made none."""
        return self.night and self.yielded_bits <= 0


class SatelliteStatus:
    """The satellite segment as the NMS holds it: pools of ``satellites`` with
    ``stations``, passes in progress, ended passes and their counters."""

    def __init__(self, satellites: Sequence[str], stations: Sequence[str],
                 epoch_utc: str = "") -> None:
        self.satellites = tuple(satellites)
        self.stations = tuple(stations)
        #: The UTC instant of the satellite clock's 0 (ISO 8601), for the console.
        self.epoch_utc = epoch_utc
        #: Key in each pool (bits), as last reported.
        self.pools: dict[Cell, float] = {(s, x): 0.0 for s in self.satellites
                                         for x in self.stations}
        self.in_progress: tuple[SatellitePass, ...] = ()
        #: The satellite clock at the last report (s from ``epoch_utc``), and the NMS time.
        self.clock_s = 0.0
        self.t: float | None = None
        self.recent: deque[PassOutcome] = deque(maxlen=RECENT_PASSES)
        #: Since start, per pool: passes ended, night passes that made no key, key made.
        self.passes: dict[Cell, int] = dict.fromkeys(self.pools, 0)
        self.passes_no_key: dict[Cell, int] = dict.fromkeys(self.pools, 0)
        self.pass_key_bits: dict[Cell, float] = dict.fromkeys(self.pools, 0.0)

    def update(self, t: float, clock_s: float, pools: Mapping[Cell, float],
               in_progress: Iterable[SatellitePass], ended: Iterable[PassOutcome]) -> None:
        """One report at NMS time ``t`` (s): satellite clock ``clock_s`` (s), the pools'
        key (bits), the passes under way and those that ended since the last report."""
        self.t, self.clock_s = t, clock_s
        for cell, bits in pools.items():
            self.pools[cell] = float(bits)
        self.in_progress = tuple(in_progress)
        for outcome in ended:
            p = outcome.scheduled
            cell = (p.satellite, p.station)
            self.passes[cell] = self.passes.get(cell, 0) + 1
            self.passes_no_key[cell] = self.passes_no_key.get(cell, 0) + int(outcome.no_key)
            self.pass_key_bits[cell] = self.pass_key_bits.get(cell, 0.0) + outcome.yielded_bits
            self.recent.append(outcome)

    def snapshot(self) -> dict[str, Any]:
        """JSON-ready: the clock, the pools (bits), the passes in progress (with how far
        along they are, 0 to 1) and the recent outcomes, newest last."""
        return {
            "t": self.t, "epoch_utc": self.epoch_utc, "clock_s": self.clock_s,
            "satellites": list(self.satellites), "stations": list(self.stations),
            "pools": [{"satellite": s, "station": x, "key_bits": bits}
                      for (s, x), bits in self.pools.items()],
            "in_progress": [{**_pass_record(p),
                             "progress": min(1.0, max(0.0, (self.clock_s - p.rise_s)
                                                      / p.duration_s)) if p.duration_s else 1.0}
                            for p in self.in_progress],
            "recent": [{**_pass_record(o.scheduled), "yielded_bits": o.yielded_bits,
                        "ended_at": o.t, "no_key": o.no_key} for o in self.recent],
        }


def _pass_record(p: SatellitePass) -> dict[str, Any]:
    return {"satellite": p.satellite, "station": p.station, "rise_s": p.rise_s,
            "culmination_s": p.culmination_s, "set_s": p.set_s,
            "max_elevation_deg": p.max_elevation_deg, "scheduled_bits": p.key_bits}
