"""The recording of a run for the O&M console: its format, written and read here and
nowhere else (bytes in and out, and the report folder that holds them).

A recording is the run's network (``NETWORK_FILE``, the scenario file format) and
``TELEMETRY_FILE``, a NumPy ``.npz`` archive that :func:`encode_telemetry` writes
byte-deterministically (fixed member order and timestamps, unlike ``np.savez``):

- ``t``: sample times (s); ``ids``: the QKD-links;
- ``skr_bps`` (bit/s), ``qber`` (ratio, NaN when not measured), ``up``: per sample and link;
- ``alarm_id``, ``alarm_rule``, ``alarm_severity`` (X.733, 1 warning … 4 critical),
  ``alarm_subject``, ``alarm_text``, ``alarm_raised_at``, ``alarm_cleared_at`` (s, NaN while
  active), ``alarm_value``: every alarm the run's NMS raised, in raise order.

Why the alarms are recorded rather than recomputed on replay: the run's NMS saw every step,
the recording keeps hourly samples, and the rules' hold times make alarms of one depend on
the samples between. Replaying the recorded alarms shows exactly the run's.
"""

from __future__ import annotations

import io
import math
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from qkdnet.errors import ParameterError
from qkdnet.files.networks import load_network, save_network
from qkdnet.management.alarms import Alarm, AlarmEvent, Severity
from qkdnet.management.telemetry import LinkTelemetry
from qkdnet.topology.model import Network

TELEMETRY_FILE = "telemetry.npz"
NETWORK_FILE = "network.json"

_ALARM_COLUMNS = ("alarm_id", "alarm_rule", "alarm_severity", "alarm_subject", "alarm_text",
                  "alarm_raised_at", "alarm_cleared_at", "alarm_value")


@dataclass(frozen=True)
class Recording:
    """A run's network and its telemetry: ``t`` (s), and per sample and link (columns in
    ``ids`` order) the SKR (bit/s), QBER (NaN when not measured) and up flag; ``alarms``:
    every alarm its NMS raised, in raise order."""

    network: Network
    ids: tuple[str, ...]
    t: npt.NDArray[np.float64]
    skr_bps: npt.NDArray[np.float64]
    qber: npt.NDArray[np.float64]
    up: npt.NDArray[np.bool_]
    alarms: tuple[Alarm, ...] = ()

    @property
    def samples(self) -> int:
        """Number of telemetry samples."""
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
        return LinkTelemetry(float(self.t[k]) + offset_s, self.ids, self.skr_bps[k],
                             self.qber[k], self.up[k], np.zeros(n, dtype=bool))

    def alarm_events(self) -> list[AlarmEvent]:
        """The raises and clears of ``alarms`` in time order, then raise order, a raise
        before its own clear: along each rule and subject that is the order they happened
        in (an alarm is raised after the one before it cleared), and the replayed history
        keeps the raise order."""
        keyed: list[tuple[float, int, int, AlarmEvent]] = []
        for n, alarm in enumerate(self.alarms):
            raised = Alarm(alarm.id, alarm.rule, alarm.subject, alarm.severity, alarm.text,
                           alarm.raised_at, alarm.value)
            keyed.append((alarm.raised_at, n, 0, AlarmEvent("raised", raised)))
            if alarm.cleared_at is not None:
                keyed.append((alarm.cleared_at, n, 1, AlarmEvent("cleared", alarm)))
        keyed.sort(key=lambda item: item[:3])
        return [event for *_, event in keyed]


def encode_telemetry(recording: Recording) -> bytes:
    """``recording``'s telemetry and alarms as the bytes of ``TELEMETRY_FILE``; SKR and
    QBER are stored as float32."""
    arrays: dict[str, npt.NDArray[Any]] = {
        "t": np.asarray(recording.t, dtype=np.float64),
        "ids": np.array(recording.ids, dtype=np.str_),
        "skr_bps": np.asarray(recording.skr_bps, dtype=np.float32),
        "qber": np.asarray(recording.qber, dtype=np.float32),
        "up": np.asarray(recording.up, dtype=np.bool_),
        **_alarm_columns(recording.alarms),
    }
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, arr in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, arr, allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, buffer.getvalue())
    return out.getvalue()


def _alarm_columns(alarms: Sequence[Alarm]) -> dict[str, npt.NDArray[Any]]:
    def text(values: list[str]) -> npt.NDArray[np.str_]:
        return np.array(values, dtype=np.str_) if values else np.zeros(0, dtype="<U1")

    return {
        "alarm_id": text([a.id for a in alarms]),
        "alarm_rule": text([a.rule for a in alarms]),
        "alarm_severity": np.array([int(a.severity) for a in alarms], dtype=np.int8),
        "alarm_subject": text([a.subject for a in alarms]),
        "alarm_text": text([a.text for a in alarms]),
        "alarm_raised_at": np.array([a.raised_at for a in alarms], dtype=np.float64),
        "alarm_cleared_at": np.array([math.nan if a.cleared_at is None else a.cleared_at
                                      for a in alarms], dtype=np.float64),
        "alarm_value": np.array([a.value for a in alarms], dtype=np.float64),
    }


def decode_telemetry(data: bytes, network: Network) -> Recording:
    """The recording of ``network`` that ``data`` (the bytes of ``TELEMETRY_FILE``)
    holds. A SKR that is not a number reads 0, a QBER outside [0, 1] as not measured.
    ParameterError naming ``TELEMETRY_FILE`` for bytes that are not such a file, arrays
    that do not fit together, or a QKD-link the network lacks."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            columns = {name: archive[name] for name in archive.files}
        t = np.asarray(columns["t"], dtype=np.float64)
        ids = tuple(str(i) for i in columns["ids"].tolist())
        skr = np.nan_to_num(np.asarray(columns["skr_bps"], dtype=np.float64), nan=0.0)
        qber = np.asarray(columns["qber"], dtype=np.float64)
        up = np.asarray(columns["up"], dtype=np.bool_)
        alarms = _alarms(columns)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise ParameterError(TELEMETRY_FILE, f"<{len(data)} bytes>",
                             f"a recorded run's telemetry ({exc})") from exc
    shape = (t.size, len(ids))
    if skr.shape != shape or qber.shape != shape or up.shape != shape:
        raise ParameterError(TELEMETRY_FILE, f"<{len(data)} bytes>",
                             f"arrays of one sample per time and link {shape}")
    unknown = [i for i in ids if i not in network.link]
    if unknown:
        raise ParameterError(TELEMETRY_FILE, unknown[0],
                             f"a QKD-link of the recorded network {network.name}")
    qber = np.where((qber >= 0.0) & (qber <= 1.0), qber, np.nan)
    return Recording(network, ids, t, np.maximum(skr, 0.0), qber, up, alarms)


def _alarms(columns: dict[str, npt.NDArray[Any]]) -> tuple[Alarm, ...]:
    """The recorded alarms; a recording without alarm columns has none."""
    if not any(name in columns for name in _ALARM_COLUMNS):
        return ()
    ids, rules, severities, subjects, texts, raised, cleared, values = (
        columns[name].tolist() for name in _ALARM_COLUMNS)
    if len({len(ids), len(rules), len(severities), len(subjects), len(texts), len(raised),
            len(cleared), len(values)}) != 1:
        raise ValueError("alarm columns of different lengths")
    return tuple(
        Alarm(id=str(i), rule=str(r), subject=str(sub), severity=Severity(int(s)),
              text=str(text), raised_at=float(ra), value=float(v),
              cleared_at=None if math.isnan(c) else float(c))
        for i, r, s, sub, text, ra, c, v in zip(ids, rules, severities, subjects, texts,
                                                raised, cleared, values, strict=True))


def save_recording(recording: Recording, folder: Path) -> None:
    """Write ``recording`` into ``folder`` (which must exist)."""
    (folder / TELEMETRY_FILE).write_bytes(encode_telemetry(recording))
    save_network(recording.network, folder / NETWORK_FILE)


def load_recording(folder: Path) -> Recording:
    """Read the recording in a twin report folder; a missing or unreadable file is a
    ParameterError naming it."""
    for name in (NETWORK_FILE, TELEMETRY_FILE):
        if not (folder / name).is_file():
            raise ParameterError("REPORT_DIR", str(folder),
                                 f"a twin report folder with {name} (missing: "
                                 f"{folder / name}); run `qkdnet twin --out DIR` first")
    network = load_network(folder / NETWORK_FILE)
    try:
        return decode_telemetry((folder / TELEMETRY_FILE).read_bytes(), network)
    except OSError as exc:
        raise ParameterError("REPORT_DIR", str(folder),
                             f"{TELEMETRY_FILE} cannot be read ({exc.strerror})") from exc
    except ParameterError as exc:
        raise ParameterError("REPORT_DIR", str(folder),
                             f"{TELEMETRY_FILE}: {exc.value} is not {exc.allowed}") from exc
