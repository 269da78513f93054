"""``qkdnet console``: the O&M web console over a finished twin run.

A twin report folder holds the run's network (``network.json``) and its hourly link
telemetry (``telemetry.npz``). The replay feeds them, sample after sample, into an
:class:`~qkdnet.management.nms.Nms` and the NMS's alarm rules at ``speed`` samples per
second (the sample times are the simulated seconds), so the console's map, charts and
alarms move as the run did. A twin run has no KM-link records, so only the QKD-link rules
apply, and there is no live network to inject faults into.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from qkdnet.errors import ParameterError
from qkdnet.files.networks import load_network
from qkdnet.live.reports import Updates, observe
from qkdnet.management.alarms import AlarmEngine
from qkdnet.management.nms import Nms
from qkdnet.management.telemetry import LinkTelemetry
from qkdnet.topology.model import Network

TELEMETRY_FILE = "telemetry.npz"
NETWORK_FILE = "network.json"


@dataclass(frozen=True)
class Recording:
    """A twin run's network and its telemetry: ``t`` (s), and per sample and link (columns
    in ``ids`` order) the SKR (bit/s), QBER (NaN when not measured) and up flag."""

    network: Network
    ids: tuple[str, ...]
    t: npt.NDArray[np.float64]
    skr_bps: npt.NDArray[np.float64]
    qber: npt.NDArray[np.float64]
    up: npt.NDArray[np.bool_]

    @property
    def samples(self) -> int:
        return int(self.t.size)

    @property
    def period_s(self) -> float:
        """How far one pass of the recording moves the clock (s): its span plus one
        sample interval, so a looped replay keeps time moving forward."""
        if self.t.size < 2:
            return float(self.t[0]) if self.t.size else 0.0
        return float(self.t[-1] - self.t[0]) + float(self.t[1] - self.t[0])

    def batch(self, k: int, offset_s: float = 0.0) -> LinkTelemetry:
        """Sample ``k`` as NMS records, ``offset_s`` later than recorded."""
        n = len(self.ids)
        return LinkTelemetry(float(self.t[k]) + offset_s, self.ids, self.skr_bps[k], self.qber[k],
                             self.up[k], np.zeros(n, dtype=bool))


def load_recording(folder: Path) -> Recording:
    """Read a twin report folder; a missing or unreadable file is a ParameterError naming
    it."""
    for name in (NETWORK_FILE, TELEMETRY_FILE):
        if not (folder / name).is_file():
            raise ParameterError("REPORT_DIR", str(folder),
                                 f"a twin report folder with {name} (missing: "
                                 f"{folder / name}); run `qkdnet twin --out DIR` first")
    network = load_network(folder / NETWORK_FILE)
    try:
        with np.load(folder / TELEMETRY_FILE, allow_pickle=False) as data:
            t = np.asarray(data["t"], dtype=np.float64)
            ids = tuple(str(i) for i in data["ids"].tolist())
            skr = np.nan_to_num(np.asarray(data["skr_bps"], dtype=np.float64), nan=0.0)
            qber = np.asarray(data["qber"], dtype=np.float64)
            up = np.asarray(data["up"], dtype=np.bool_)
    except (OSError, ValueError, KeyError) as exc:
        raise ParameterError("REPORT_DIR", str(folder),
                             f"{TELEMETRY_FILE} is not a twin telemetry file ({exc})") from exc
    shape = (t.size, len(ids))
    if skr.shape != shape or qber.shape != shape or up.shape != shape:
        raise ParameterError("REPORT_DIR", str(folder),
                             f"{TELEMETRY_FILE}: arrays do not match {shape}")
    unknown = [i for i in ids if i not in network.link]
    if unknown:
        raise ParameterError("REPORT_DIR", str(folder),
                             f"{TELEMETRY_FILE} names QKD-link {unknown[0]!r} that "
                             f"{NETWORK_FILE} lacks")
    qber = np.where((qber >= 0.0) & (qber <= 1.0), qber, np.nan)
    return Recording(network, ids, t, np.maximum(skr, 0.0), qber, up)


class Replay:
    """The NMS and alarm engine a recording is replayed into."""

    def __init__(self, recording: Recording) -> None:
        self.recording = recording
        self.nms = Nms(recording.network)
        self.alarms = AlarmEngine()
        self.updates = Updates()  # wakes the console's event streams after each sample
        self.position = 0  # samples of the current pass ingested so far
        self.passes = 0  # complete passes before the current one

    @property
    def done(self) -> bool:
        """Whether the current pass has ingested every sample."""
        return self.position >= self.recording.samples

    def step(self) -> bool:
        """Ingest the next sample and run the rules; False once the pass is complete."""
        if self.done:
            return False
        links = self.recording.batch(self.position, self.passes * self.recording.period_s)
        self.nms.ingest(links)
        observe(self.alarms, links)
        self.updates.notify()
        self.position += 1
        return True

    def restart(self) -> None:
        """Start another pass; its samples come one period later, so the NMS's clock and
        the alarm rules keep moving forward."""
        self.passes += 1
        self.position = 0

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
