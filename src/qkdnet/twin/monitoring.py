"""The twin's management layer: each simulated step's QKD-link records go to a
:class:`~qkdnet.management.monitor.NetworkMonitor` (the NMS and its alarm rules that
``qkdnet serve`` runs too), so the twin's alarms are the NMS's. The twin holds every
link's record of a step at once, so it reports them to the NMS whole rather than split
into the seven regions' EMS reports for the NMS to join again."""

from __future__ import annotations

import numpy as np

from qkdnet.management.alarms import Alarm
from qkdnet.management.monitor import NetworkMonitor
from qkdnet.management.telemetry import BoolArray, FloatArray, LinkTelemetry
from qkdnet.topology.model import Network

#: Samples the twin's NMS keeps per QKD-link: the report takes its hourly telemetry from
#: the engine, so an hour of 5-min steps is plenty and the NMS stays small on large
#: networks.
HISTORY_POINTS = 12


class TwinMonitor:
    """Reports the QKD-links ``link_ids`` of ``network`` to an NMS, step after step."""

    def __init__(self, network: Network, link_ids: tuple[str, ...]) -> None:
        self.monitor = NetworkMonitor(network, history_points=HISTORY_POINTS, regional=False)
        self.link_ids = link_ids
        # the twin models no detector blinding: the current monitors never trip
        self._no_trip = np.zeros(len(link_ids), dtype=bool)

    def step(self, t: float, skr_bps: FloatArray, qber: FloatArray, up: BoolArray) -> None:
        """One step ending at ``t`` (s): per link the SKR (bit/s), QBER (NaN: not measured)
        and whether it was up."""
        self.monitor.report(LinkTelemetry(t, self.link_ids, skr_bps, qber, up, self._no_trip))

    def alarms(self) -> tuple[Alarm, ...]:
        """Every alarm the NMS raised so far, in raise order."""
        return tuple(self.monitor.alarms.history())
