"""The satellite segment's report from the devices service to the NMS: JSON that parses
back to what was sent, a malformed report refused naming its field, and the NMS taking
each ended pass once (a report sent again after a lost answer raises nothing twice)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from qkdnet.keys.etsi014 import ApiError
from qkdnet.live.nms_service import NmsState
from qkdnet.live.satellite_records import SatelliteReport, parse_report, scenario_clock
from qkdnet.management.monitor import NetworkMonitor
from qkdnet.quantum.satellite_pass import SatellitePass
from qkdnet.topology.cn_qcn import build_cn_qcn
from qkdnet.topology.model import Network
from qkdnet.twin.satellite_passes import TWIN_EPOCH

START = datetime(2025, 1, 1, 12, tzinfo=UTC)
NIGHT = SatellitePass("jinan-1", "hainan-gs", 100.0, 300.0, 500.0, 40.0, 200_000.0)
DAY = SatellitePass("jinan-1", "beijing-gs", 900.0, 1000.0, 1100.0, 30.0, 0.0)


@pytest.fixture(scope="module")
def network() -> Network:
    return build_cn_qcn()


def report(ended: tuple[tuple[SatellitePass, float], ...] = ()) -> SatelliteReport:
    return SatelliteReport(START, 600.0, 20.0, {("jinan-1", "hainan-gs"): 5e5,
                                                 ("jinan-1", "beijing-gs"): 7e5},
                           (DAY,), ended)


def test_a_report_parses_back_to_what_was_sent(network: Network) -> None:
    """document() then parse_report() gives the same report."""
    sent = report(((NIGHT, 0.0),))
    assert parse_report(sent.document(), network, ("jinan-1",)) == sent


@pytest.mark.parametrize(("change", "field"), [
    (lambda d: d.pop("clock_s"), "clock_s: missing"),
    (lambda d: d.update(start_utc="2025-01-01T12:00:00"), "start_utc"),
    (lambda d: d["pools"][0].update(station="beijing"), "pools[0].station"),
    (lambda d: d["pools"][0].update(satellite="micius"), "pools[0].satellite"),
    (lambda d: d["ended"][0].update(yielded_bits=-1), "ended[0].yielded_bits"),
    (lambda d: d["in_progress"][0].update(set_s=50.0), "in_progress[0]"),
    (lambda d: d.update(speedup=0), "speedup"),
])
def test_a_malformed_report_is_refused_naming_its_field(
        network: Network, change: Any, field: str) -> None:
    """400, and the message names the field (a non-ground station, an unknown satellite,
    a negative amount, times out of order, a clock without its offset)."""
    document = report(((NIGHT, 0.0),)).document()
    change(document)
    with pytest.raises(ApiError) as refused:
        parse_report(document, network, ("jinan-1",))
    assert refused.value.status == 400
    assert field in str(refused.value)


def test_the_nms_takes_each_ended_pass_once_and_alarms_on_a_night_pass_without_key(
        network: Network) -> None:
    """A night pass that left nothing raises satellite-pass-no-key on its station; the same
    report sent again (its answer lost) counts it once; the pools are the NMS's."""
    clock = [1_000.0]
    state = NmsState(NetworkMonitor(network), clock=lambda: clock[0])
    assert state.take_satellite(report(((NIGHT, 0.0), (DAY, 0.0)))) == 2
    clock[0] += 1
    assert state.take_satellite(report(((NIGHT, 0.0), (DAY, 0.0)))) == 0
    status = state.monitor.nms.satellite
    assert status is not None
    assert status.passes_no_key[("jinan-1", "hainan-gs")] == 1
    assert status.passes[("jinan-1", "hainan-gs")] == 1
    assert status.pools[("jinan-1", "beijing-gs")] == 7e5
    active = {(a.rule, a.subject) for a in state.monitor.alarms.active()}
    assert active == {("satellite-pass-no-key", "hainan-gs")}


def test_the_console_clock_runs_on_from_the_last_report() -> None:
    """10 s of wall clock after a report at satellite clock 600 s, x20: 800 s on, counted
    from TWIN_EPOCH (the satellite clock started 12 h after it)."""
    at = scenario_clock(report(), TWIN_EPOCH, received=50.0, now=60.0)
    assert at == 12 * 3600 + 600 + 10 * 20


def test_before_any_report_the_console_clock_counts_from_the_nms_start(
        network: Network) -> None:
    """No satellite report yet: the console shows the satellite at the NMS's own elapsed
    time (x1), as the O&M app does by default, not years past the TLE's epoch."""
    clock = [5_000.0]
    state = NmsState(NetworkMonitor(network), clock=lambda: clock[0])
    clock[0] += 30.0
    assert state.satellite_clock() == 30.0
