"""The recording format: telemetry and alarms to bytes and back unchanged, the same bytes
for the same recording, the alarm events in an order a replay can follow, and clear errors
for bytes that are not a recording."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest

from qkdnet.errors import ParameterError
from qkdnet.files.recording import (
    TELEMETRY_FILE,
    Recording,
    decode_telemetry,
    encode_telemetry,
)
from qkdnet.management.alarms import DEFAULT_RULES, Alarm, AlarmEngine
from qkdnet.topology.cn_qcn import build_cn_qcn
from qkdnet.topology.model import Network


@pytest.fixture(scope="module")
def net() -> Network:
    return build_cn_qcn()


def _recording(net: Network, alarms: tuple[Alarm, ...] = ()) -> Recording:
    ids = tuple(net.link)[:5]
    t = np.array([3600.0, 7200.0, 10800.0])
    skr = np.arange(15, dtype=float).reshape(3, 5) * 100.0
    qber = np.full((3, 5), 0.03125)
    qber[1, 2] = np.nan
    up = np.ones((3, 5), bool)
    up[1, 2] = False
    return Recording(net, ids, t, skr, qber, up, alarms)


def _alarm(n: int, raised: float, cleared: float | None, subject: str = "l") -> Alarm:
    rule = DEFAULT_RULES[0]
    return Alarm(f"{rule.name}:{subject}:{n}", rule.name, subject, rule.severity, rule.text,
                 raised, 0.0, cleared)


def test_a_recording_comes_back_as_it_was_written(net: Network) -> None:
    """Telemetry (SKR and QBER as float32) and every field of every alarm survive."""
    alarms = (_alarm(1, 100.0, 400.0), _alarm(2, 500.0, None))
    rec = _recording(net, alarms)
    back = decode_telemetry(encode_telemetry(rec), net)
    assert back.ids == rec.ids and back.samples == 3 and back.period_s == 3 * 3600.0
    np.testing.assert_array_equal(back.t, rec.t)
    np.testing.assert_array_equal(back.skr_bps, rec.skr_bps)
    np.testing.assert_array_equal(back.qber, rec.qber)  # NaN where not measured
    np.testing.assert_array_equal(back.up, rec.up)
    assert back.alarms == alarms


def test_the_same_recording_gives_the_same_bytes(net: Network) -> None:
    """No timestamps in the archive: a report folder is byte-identical run after run."""
    alarms = (_alarm(1, 100.0, 400.0),)
    assert encode_telemetry(_recording(net, alarms)) == encode_telemetry(_recording(net, alarms))


def test_a_recording_without_alarm_columns_has_no_alarms(net: Network) -> None:
    """A telemetry file written before alarms were recorded still reads, with none."""
    data = encode_telemetry(_recording(net, (_alarm(1, 1.0, 2.0),)))
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for name in src.namelist():
            if not name.startswith("alarm_"):
                dst.writestr(name, src.read(name))
    assert decode_telemetry(out.getvalue(), net).alarms == ()


def test_a_replay_of_the_alarm_events_rebuilds_the_alarms(net: Network) -> None:
    """Events come in time order, so an engine that replays them holds the recorded alarms
    in their raise order, even with several raises and clears of one link at one instant."""
    alarms = (_alarm(1, 100.0, 400.0), _alarm(2, 400.0, 400.0), _alarm(3, 400.0, None),
              _alarm(1, 450.0, None, subject="m"))
    events = _recording(net, alarms).alarm_events()
    assert [e.t for e in events] == sorted(e.t for e in events)
    engine = AlarmEngine()
    for event in events:
        engine.replay(event)
    assert engine.history() == list(alarms)


def test_bytes_that_are_not_a_recording_are_refused(net: Network) -> None:
    """Garbage, arrays that do not fit and links the network lacks name the file."""
    with pytest.raises(ParameterError, match=TELEMETRY_FILE):
        decode_telemetry(b"not a zip", net)
    rec = _recording(net)
    short = Recording(net, rec.ids, rec.t[:2], rec.skr_bps, rec.qber, rec.up)
    with pytest.raises(ParameterError, match="one sample per time and link"):
        decode_telemetry(encode_telemetry(short), net)
    other = Recording(net, ("x--y", *rec.ids[1:]), rec.t, rec.skr_bps, rec.qber, rec.up)
    with pytest.raises(ParameterError, match="x--y"):
        decode_telemetry(encode_telemetry(other), net)
