"""``qkdnet console``: the O&M web console over a finished twin run.

A twin report folder holds the run's recording (:mod:`qkdnet.files.recording`): its
network, hourly link telemetry and every alarm its NMS raised. The replay feeds the samples, one
after another at ``speed`` samples per second, through a
:class:`~qkdnet.management.monitor.NetworkMonitor` (the sample times are the simulated
seconds), and with each sample the alarms the run raised and cleared up to then, so the
console's map, charts and alarms move as the run did and show exactly its alarms. There is
no live network to inject faults into.
"""

from __future__ import annotations

import asyncio

from qkdnet.errors import ParameterError
from qkdnet.files.recording import Recording, load_recording
from qkdnet.live.reports import Updates
from qkdnet.management.alarms import AlarmEngine
from qkdnet.management.monitor import NetworkMonitor
from qkdnet.management.nms import Nms

__all__ = ["Replay", "load_recording"]


class Replay:
    """The management layer a recording is replayed into."""

    def __init__(self, recording: Recording) -> None:
        self.recording = recording
        self.monitor = NetworkMonitor(recording.network)
        self.updates = Updates()  # wakes the console's event streams after each sample
        self.position = 0  # samples of the current pass ingested so far
        self.passes = 0  # complete passes before the current one
        self._events = recording.alarm_events()
        self._next_event = 0  # recorded alarm events of the current pass replayed so far

    @property
    def nms(self) -> Nms:
        """The NMS the samples go to."""
        return self.monitor.nms

    @property
    def alarms(self) -> AlarmEngine:
        """The alarms of the run, as replayed so far."""
        return self.monitor.alarms

    @property
    def done(self) -> bool:
        """Whether the current pass has ingested every sample."""
        return self.position >= self.recording.samples

    def step(self) -> bool:
        """Ingest the next sample with the alarm events up to its time (the last sample:
        all that are left); False once the pass is complete."""
        if self.done:
            return False
        offset = self.passes * self.recording.period_s
        last = self.position == self.recording.samples - 1
        until = float(self.recording.t[self.position])
        start = self._next_event
        while self._next_event < len(self._events) and (
                last or self._events[self._next_event].t <= until):
            self._next_event += 1
        self.monitor.replay(self.recording.batch(self.position, offset),
                            self._events[start:self._next_event], offset)
        self.updates.notify()
        self.position += 1
        return True

    def restart(self) -> None:
        """Start another pass; its samples and alarms come one period later, so the NMS's
        clock and the alarms keep moving forward."""
        self.passes += 1
        self.position = 0
        self._next_event = 0

    async def play(self, speed: float, loop: bool = False) -> None:
        """Ingest ``speed`` samples per second; at the end stop and keep the final state,
        or (``loop``) start over."""
        if not speed > 0:
            raise ParameterError("speed", speed, "must be > 0")
        while True:
            if not self.step():
                if not loop or self.recording.samples == 0:
                    return
                self.restart()
                continue
            await asyncio.sleep(1.0 / speed)
