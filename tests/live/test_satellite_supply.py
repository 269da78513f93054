"""The satellite segment of the live network: passes emulated on a clock, the pools they
fill, the pads a satellite KM-link's stores get from them, and what the NMS makes of it
(pool levels, pass outcomes, the no-key alarm, the Prometheus families)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from qkdnet.errors import ParameterError
from qkdnet.keys.store import SQLiteKeyStore
from qkdnet.live.satellite_state import STATE_FILE, SatelliteState
from qkdnet.live.satellite_supply import (
    BLOCK_BYTES,
    MAX_WINDOWS_PER_STEP,
    SatelliteSupply,
    satellites_of,
)
from qkdnet.management.metrics import exposition
from qkdnet.management.monitor import NetworkMonitor
from qkdnet.management.satellite import SatelliteStatus
from qkdnet.quantum.satellite_pass import SatellitePass
from qkdnet.topology.cn_qcn import build_cn_qcn
from qkdnet.topology.model import Network

SAT_LINK = "sat:beijing-gs~hainan-gs"
PREFILL_BITS = 200_000.0


@pytest.fixture(scope="module")
def network() -> Network:
    return build_cn_qcn()


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[dict[str, SQLiteKeyStore]]:
    """Real SQLite stores at the two ends of one satellite KM-link."""
    made = {n: SQLiteKeyStore(tmp_path / f"{n}.sqlite", n, 2**17)
            for n in ("beijing-gs", "hainan-gs")}
    yield made
    for store in made.values():
        store.close()


def supply_of(network: Network, stores: dict[str, SQLiteKeyStore], speedup: float = 1.0,
              clouded: tuple[str, ...] = ()) -> SatelliteSupply:
    return SatelliteSupply(network, stores, satellites_of(network), 1e7, speedup=speedup,
                           clouded=clouded)


def night_pass(supply: SatelliteSupply, station: str) -> SatellitePass:
    """The first pass over ``station`` the orbit model gives key."""
    supply.pump(0.0)
    return next(p for p in supply.upcoming(0.0, 200)
                if p.station == station and p.key_bits > 0)


def test_prefilled_pools_give_both_ends_the_same_pads_and_pay_both_pools(
        network: Network, stores: dict[str, SQLiteKeyStore]) -> None:
    """With prefilled pools the KM-link's two stores get identical pads, and the pad
    deposited is spent from both the Beijing and the Hainan pool, no bit lost."""
    supply = supply_of(network, stores)
    assert [k.id for k in supply.km_links] == [SAT_LINK]
    supply.start(0.0, PREFILL_BITS)
    blocks = supply.pump(0.0)
    assert blocks > 0
    _, sent = stores["beijing-gs"].take_outbound(SAT_LINK, 8)
    levels = supply.pool_levels()
    spent = blocks * BLOCK_BYTES * 8
    assert levels[("jinan-1", "beijing-gs")] == PREFILL_BITS - spent
    assert levels[("jinan-1", "hainan-gs")] == PREFILL_BITS - spent
    assert levels[("jinan-1", "shanghai-gs")] == PREFILL_BITS  # no KM-link here uses it
    assert np.allclose(supply.pools.imbalance(), 0.0)
    assert len(sent) == 8 * 32


def test_a_pad_taken_at_one_end_is_the_pad_held_at_the_other(
        network: Network, stores: dict[str, SQLiteKeyStore]) -> None:
    """The units a sender takes at one end are the very bytes the receiver takes at the
    other: one pad, made by the satellite, shared by both ground stations."""
    supply = supply_of(network, stores)
    supply.start(0.0, PREFILL_BITS)
    supply.pump(0.0)
    a, b = stores["beijing-gs"], stores["hainan-gs"]
    for sender, receiver in ((a, b), (b, a)):
        ranges, pad = sender.take_outbound(SAT_LINK, 5)
        assert receiver.take_inbound(SAT_LINK, ranges) == pad


def test_the_link_reports_its_pad_and_what_its_pools_can_still_relay(
        network: Network, stores: dict[str, SQLiteKeyStore]) -> None:
    """The KM-link's state is the pad in its tighter direction plus the smaller pool; with
    no key anywhere it reports none (so satellite_cost makes it unusable)."""
    empty = supply_of(network, stores)
    empty.start(0.0)
    empty.pump(0.0)
    assert [(s.km_link, s.key_bits) for s in empty.link_states()] == [(SAT_LINK, 0.0)]
    supply = supply_of(network, stores)
    supply.start(0.0, PREFILL_BITS)
    supply.pump(0.0)
    (state,) = supply.link_states()
    pad = 8 * min(stores["beijing-gs"].pool_bytes(SAT_LINK, True),
                  stores["hainan-gs"].pool_bytes(SAT_LINK, True))
    assert pad > 0
    assert state.key_bits == pad + supply.pools.relayable(SAT_LINK)


def test_a_night_pass_fills_its_pool_over_the_pass_and_ends_with_its_key(
        network: Network) -> None:
    """Halfway through a night pass the station's pool holds about half the pass's key;
    once it has set, all of it, and the outcome says so."""
    supply = supply_of(network, {})
    supply.start(0.0)
    p = night_pass(supply, "hainan-gs")
    middle = (p.rise_s + p.set_s) / 2
    supply.pump(middle)
    assert [q.station for q in supply.in_progress(middle)].count("hainan-gs") == 1
    half = supply.pool_levels()[("jinan-1", "hainan-gs")]
    assert half == pytest.approx(p.key_bits / 2, rel=1e-6)
    supply.pump(p.set_s + 1.0)
    assert supply.pool_levels()[("jinan-1", "hainan-gs")] == pytest.approx(p.key_bits)
    ended = [o for o in supply.take_ended(5.0) if o.scheduled.station == "hainan-gs"]
    assert [(o.yielded_bits, o.no_key, o.t) for o in ended][-1] == (
        pytest.approx(p.key_bits), False, 5.0)


def test_passes_run_speedup_times_faster_than_the_wall_clock(network: Network) -> None:
    """At --speedup 100 a pass at t s on the satellite clock happens t/100 s after start."""
    supply = supply_of(network, {}, speedup=100.0)
    supply.start(1000.0)
    supply.pump(1000.0)
    p = next(q for q in supply.upcoming(1000.0, 200) if q.key_bits > 0)
    assert supply.clock_s(1000.0 + p.set_s / 100) == pytest.approx(p.set_s)
    supply.pump(1000.0 + (p.rise_s - 1) / 100)
    assert supply.pool_levels()[("jinan-1", p.station)] == 0.0
    supply.pump(1000.0 + (p.set_s + 1) / 100)
    assert supply.pool_levels()[("jinan-1", p.station)] == pytest.approx(p.key_bits)


def test_a_clouded_night_pass_raises_the_no_key_alarm_and_a_good_one_clears_it(
        network: Network) -> None:
    """A night pass over a clouded station yields nothing: the NMS counts it and raises
    satellite-pass-no-key on the station; the next night pass with key clears it. The
    Prometheus exposition carries the pools and the pass counters."""
    supply = supply_of(network, {}, clouded=("hainan-gs",))
    supply.start(0.0)
    p = night_pass(supply, "hainan-gs")
    monitor = NetworkMonitor(network)
    status = SatelliteStatus(supply.pools.satellites, supply.pools.stations)
    supply.pump(p.set_s + 1.0)
    events = monitor.report_satellite(status, 100.0, supply.clock_s(p.set_s + 1.0),
                                      supply.pool_levels(), supply.in_progress(p.set_s + 1),
                                      supply.take_ended(100.0))
    raised = [e for e in events if e.alarm.rule == "satellite-pass-no-key"]
    assert [(e.kind, e.alarm.subject) for e in raised] == [("raised", "hainan-gs")]
    assert status.passes_no_key[("jinan-1", "hainan-gs")] == 1
    text = exposition(monitor.nms).decode()
    assert ('qkdnet_satellite_passes_no_key_total{satellite="jinan-1",station="hainan-gs"} 1.0'
            in text)
    assert 'qkdnet_satellite_pool_key_bits{satellite="jinan-1",station="hainan-gs"} 0.0' in text
    supply.clouded.clear()
    after = next(q for q in supply.upcoming(p.set_s + 1.0, 200)
                 if q.station == "hainan-gs" and q.key_bits > 0)
    supply.pump(after.set_s + 1.0)
    events = monitor.report_satellite(status, 200.0, supply.clock_s(after.set_s + 1.0),
                                      supply.pool_levels(), (), supply.take_ended(200.0))
    assert [(e.kind, e.alarm.subject) for e in events
            if e.alarm.rule == "satellite-pass-no-key"] == [("cleared", "hainan-gs")]
    assert monitor.nms.satellite is status
    assert status.snapshot()["recent"][-1]["yielded_bits"] == pytest.approx(after.key_bits)


def _state(tmp_path: Path, supply: SatelliteSupply) -> SatelliteState:
    return SatelliteState(tmp_path / STATE_FILE, supply.start_utc.isoformat())


def test_a_restart_resumes_the_satellite_clock_and_pools_mid_pass(
        network: Network, tmp_path: Path) -> None:
    """Stopped halfway through a night pass and started again (a new loop clock), the
    segment resumes at the same satellite time with the same pools; the pass ends with
    its key counted once."""
    first = supply_of(network, {})
    first.state = _state(tmp_path, first)
    first.start(0.0, PREFILL_BITS)
    p = night_pass(first, "hainan-gs")
    middle = (p.rise_s + p.set_s) / 2
    first.pump(middle)
    kept = first.pool_levels()
    first.close()
    again = supply_of(network, {})
    again.state = _state(tmp_path, again)
    again.start(5000.0, PREFILL_BITS)  # the prefill is for a new segment only
    assert again.clock_s(5000.0) == pytest.approx(middle)
    assert again.pool_levels() == kept
    again.pump(5000.0 + p.set_s - middle + 1.0)
    assert again.pool_levels()[("jinan-1", "hainan-gs")] == pytest.approx(
        PREFILL_BITS + p.key_bits)
    assert np.allclose(again.pools.imbalance(), 0.0)
    again.close()


def test_key_spent_is_kept_spent_across_a_restart(network: Network, tmp_path: Path) -> None:
    """A relay through the satellite is on disk when spend returns: a new process on the
    same file finds both pools paid and the KM-link's relayed count."""
    first = supply_of(network, {})
    first.state = _state(tmp_path, first)
    first.start(0.0, PREFILL_BITS)
    first.spend(SAT_LINK, "hainan-gs", 100, 0.0)  # 100 units of 256 bits
    first.state.close()  # as a SIGKILL would leave it: no last save
    again = supply_of(network, {})
    again.state = _state(tmp_path, again)
    again.start(0.0)
    levels = again.pool_levels()
    assert levels[("jinan-1", "hainan-gs")] == PREFILL_BITS - 25_600
    assert levels[("jinan-1", "beijing-gs")] == PREFILL_BITS - 25_600
    assert again.pools.relayed[again.pools.km_links.index(SAT_LINK)] == 25_600
    again.close()


def test_a_state_file_of_another_satellite_clock_is_refused(network: Network,
                                                           tmp_path: Path) -> None:
    """A state file made for another --satellite-start is not resumed on: the error
    names the option, the file and the start it holds."""
    first = supply_of(network, {})
    first.state = _state(tmp_path, first)
    first.start(0.0)
    first.close()
    with pytest.raises(ParameterError) as raised:
        SatelliteState(tmp_path / STATE_FILE, "2025-03-01T12:00:00+00:00")
    message = str(raised.value)
    assert "--satellite-start" in message and STATE_FILE in message
    assert first.start_utc.isoformat() in message


def test_a_step_far_ahead_searches_a_few_days_and_catches_up_in_later_steps(
        network: Network) -> None:
    """At a speedup that moves the clock 20 days in one step, a step searches at most
    MAX_WINDOWS_PER_STEP days of passes; later steps catch up, and every pass of the 20
    days ends once, as when the clock moves a day at a time."""
    days = 20 * 86400.0
    jump = supply_of(network, {}, speedup=days)
    jump.start(0.0)
    jump.pump(1.0)
    assert jump.reached_s <= MAX_WINDOWS_PER_STEP * 86400.0
    steps = 1
    while jump.reached_s < days and steps < 30:
        jump.pump(1.0)
        steps += 1
    assert jump.reached_s == days
    daily = supply_of(network, {})
    daily.start(0.0)
    for day in range(1, 21):
        daily.pump(day * 86400.0)
    ended = [(o.scheduled.station, o.scheduled.rise_s) for o in jump.take_ended(0.0)]
    assert ended == [(o.scheduled.station, o.scheduled.rise_s) for o in daily.take_ended(0.0)]
    assert len(ended) > 20
