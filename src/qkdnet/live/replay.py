"""``qkdnet console``: the replay of a finished twin run, driven like a player.

A twin report folder holds the run's recording (:mod:`qkdnet.files.recording`): its network,
hourly link telemetry and every alarm its NMS raised (the same alarms, to the second, as the
report's ``alarms.csv``, which writes their times in hours). The replay has a clock of
simulated time (s, the twin's: 0 is :data:`~qkdnet.twin.satellite_passes.TWIN_EPOCH`) over
the run's span, from its first sample to its last. Moving the clock forward feeds a
:class:`~qkdnet.management.monitor.NetworkMonitor` every sample up to the new time and
brings every recorded alarm raise and clear at its own time (not alarms re-derived from the
hourly samples, which the rules' hold times make differ), so the console's map, charts and
alarms move as the run did. Alarm events of the first hour come with the first sample, the
earliest instant the replay shows.

Play advances the clock ``speed`` simulated seconds per wall second; pause holds it; seek
moves it to any instant of the span. Seeking backward rebuilds the NMS and its alarms from
the start up to the target (a whole pass of cn-qcn's ten weeks takes about 0.3 s, so no
checkpoints are kept): the alarm state after a seek is exactly what the recording implies at
that time. Alarm acknowledgements made in the console are lost on a backward seek, since
the replayed run's operators made none. There is no live network to inject faults into.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from qkdnet.errors import ParameterError
from qkdnet.files.recording import Recording, load_recording
from qkdnet.live.reports import Updates
from qkdnet.management.alarms import AlarmEngine
from qkdnet.management.monitor import NetworkMonitor
from qkdnet.management.nms import Nms
from qkdnet.twin.satellite_passes import TWIN_EPOCH

__all__ = ["MAX_SPEED", "SPEEDS", "Replay", "load_recording"]

#: The speeds the console offers (simulated seconds per wall second): real time, then each
#: step ten times faster (1e5: ten weeks in about a minute).
SPEEDS = (1.0, 10.0, 100.0, 1_000.0, 10_000.0, 100_000.0)
#: The fastest speed the O&M API takes.
MAX_SPEED = 1e6


def check_speed(name: str, speed: object) -> float:
    """``speed`` (simulated s per wall s) if in (0, MAX_SPEED], else ParameterError on ``name``."""
    if isinstance(speed, int | float) and not isinstance(speed, bool) and 0 < speed <= MAX_SPEED:
        return float(speed)
    raise ParameterError(name, speed, f"a speed in (0, {MAX_SPEED:g}] simulated seconds per "
                         "second")


class Replay:
    """The management layer a recording is replayed into, with the player's clock.

    ``speed``: simulated seconds per wall second while playing; ``loop``: at the end of the
    run start over rather than pause. The replay starts paused at the first sample."""

    def __init__(self, recording: Recording, speed: float = 10_000.0,
                 loop: bool = False) -> None:
        self.recording = recording
        self.speed = check_speed("speed", speed)
        self.loop = loop
        self.monitor = NetworkMonitor(recording.network)
        self.updates = Updates()  # wakes the console's event streams after each change
        self.playing = False
        #: Whether playing has been asked for (a page connected or a control call came).
        self.started = False
        t = recording.t
        self.start_s = float(t[0]) if t.size else 0.0
        self.end_s = float(t[-1]) if t.size else 0.0
        self.clock_s = self.start_s
        self.position = 0  # samples ingested
        self._events = recording.alarm_events()
        self._next_event = 0  # recorded alarm events replayed
        self._advance(self.start_s)

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
        """Whether the clock is at the end of the run (every sample and alarm in)."""
        return self.clock_s >= self.end_s

    def _advance(self, until_s: float) -> None:
        """Ingest the samples and alarm events up to ``until_s`` (s); at the end of the run,
        every event left (a clear after the last sample)."""
        rec, events = self.recording, self._events
        last = until_s >= self.end_s
        while self.position < rec.samples and rec.t[self.position] <= until_s:
            at = float(rec.t[self.position])
            final = self.position == rec.samples - 1
            first = self._next_event
            while self._next_event < len(events) and (
                    final or events[self._next_event].t <= at):
                self._next_event += 1
            self.monitor.replay(rec.batch(self.position), events[first:self._next_event])
            self.position += 1
        # the raises and clears between the last sample in and until_s, at their own times
        while self._next_event < len(events) and (
                last or events[self._next_event].t <= until_s):
            self.alarms.replay(events[self._next_event])
            self._next_event += 1
        self.clock_s = until_s
        self.updates.notify()

    def _rebuild(self) -> None:
        """Empty the NMS and the alarms, keeping the objects: the O&M app holds them."""
        fresh = NetworkMonitor(self.recording.network)
        for kept, new in ((self.monitor.nms, fresh.nms), (self.monitor.alarms, fresh.alarms)):
            vars(kept).clear()
            vars(kept).update(vars(new))
        self.monitor.emss = fresh.emss
        self.position = self._next_event = 0

    def seek(self, t_s: float) -> None:
        """Move the clock to ``t_s`` (s, clamped to the run's span): forward by ingesting what
        lies between, backward by rebuilding from the start. ParameterError for a time that
        is not a finite number."""
        if not (isinstance(t_s, int | float) and not isinstance(t_s, bool)
                and math.isfinite(t_s)):
            raise ParameterError("t", t_s, "a finite simulated time in seconds")
        target = min(max(float(t_s), self.start_s), self.end_s)
        if target < self.clock_s:
            self._rebuild()
        self._advance(target)

    def tick(self, wall_s: float) -> None:
        """``wall_s`` (s) of wall time passed: while playing, move the clock ``speed`` times
        as far; at the end pause, or (``loop``) start over."""
        if not self.playing or wall_s <= 0:
            return
        if self.done:
            if not self.loop:
                self.playing = False
                self.updates.notify()
                return
            self.seek(self.start_s)
            return
        self._advance(min(self.clock_s + self.speed * wall_s, self.end_s))

    def play(self) -> None:
        """Play from the clock on (from the start when at the end)."""
        if self.done and self.end_s > self.start_s:
            self.seek(self.start_s)
        self.playing = self.started = True
        self.updates.notify()

    def pause(self) -> None:
        """Hold the clock."""
        self.playing = False
        self.started = True
        self.updates.notify()

    def set_speed(self, speed: float) -> None:
        """Play ``speed`` simulated seconds per wall second from now on."""
        self.speed = check_speed("speed", speed)

    def page_connected(self) -> None:
        """A console page connected: the first one starts the replay unless a control call
        already did (or paused it)."""
        if not self.started:
            self.play()

    def state(self) -> dict[str, Any]:
        """The player's state for ``GET /api/replay``: times in simulated s (``t``: the
        clock, ``start``/``end``: the span) and ``date`` (ISO 8601, UTC) of the clock."""
        return {"replay": True, "playing": self.playing, "started": self.started,
                "loop": self.loop, "speed": self.speed, "speeds": list(SPEEDS),
                "max_speed": MAX_SPEED, "t": self.clock_s, "start": self.start_s,
                "end": self.end_s, "epoch": TWIN_EPOCH.isoformat(),
                "date": simulated_date(self.clock_s).isoformat(),
                "samples": self.recording.samples, "samples_in": self.position,
                "alarms": len(self.recording.alarms),
                "alarms_raised": len(self.alarms.history()),
                "alarms_active": len(self.alarms.active())}


def simulated_date(t_s: float) -> datetime:
    """The date and time (UTC) of simulated time ``t_s`` (s after TWIN_EPOCH)."""
    return TWIN_EPOCH + timedelta(seconds=t_s)


def simulated_time(text: str) -> float:
    """Simulated seconds of an ISO 8601 date and time (no zone: UTC); ParameterError on
    ``at`` for text that is not one."""
    try:
        when = datetime.fromisoformat(text)
    except (TypeError, ValueError) as exc:
        raise ParameterError("at", text, "an ISO 8601 date and time, e.g. "
                             "2025-01-02T06:00:00 (UTC when no zone is given)") from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (when - TWIN_EPOCH).total_seconds()
