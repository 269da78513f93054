"""The satellite segment in the twin: passes fill the satellite pools, a Chongqing metro user
reaches a Beijing one through the satellite (share served and waiting between passes
reported), no satellite means refused before the run, the satellite pools balance, a
scenario adds satellites and ground stations, and the placeholder schedule is what it
says."""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from qkdnet.errors import ScenarioError
from qkdnet.quantum.orbit import GroundStation, sun_elevation_deg
from qkdnet.quantum.satellite_pass import SatellitePass
from qkdnet.topology.model import KMLinkKind, NodeKind
from qkdnet.twin.engine import TwinResult, run_twin
from qkdnet.twin.report import write_report
from qkdnet.twin.satellite_passes import (
    TWIN_EPOCH,
    TwinSatellite,
    scenario_passes,
)
from qkdnet.twin.scenario import TwinScenario, load_twin_scenario
from qkdnet.units import DAY_S, HOUR_S, WEEK_S

EXAMPLES = Path(__file__).parents[2] / "examples"

DOC = """\
qkdnet_twin: 1
network: cn-qcn
weeks: 2
seed: 4
random_faults: false
dynamics: false
demands:
  - {id: cq-bj, source: chongqing-m1-u1, target: beijing-m1-u2, rate_bps: 2, key_bits: 256}
segments: []
"""


def _write(tmp_path: Path, text: str, name: str = "twin.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _nightly(scenario: TwinScenario, seed: int = 0) -> tuple[SatellitePass, ...]:
    """A synthetic schedule: each satellite over each station once a night, at a drawn
    hour between 20 and 02 local, with 1e5-6e5 bits of key."""
    rng = np.random.default_rng(seed)
    passes = []
    stations = scenario.network.nodes_of(NodeKind.GROUND_STATION)
    for sat in scenario.satellites:
        for st in stations:
            for night in range(int(scenario.duration_s // DAY_S)):
                top = night * DAY_S + (rng.uniform(20, 26) - st.lon / 15) % 24 * HOUR_S
                if 300 <= top <= scenario.duration_s - 300:
                    passes.append(SatellitePass(sat.id, st.id, top - 300, top, top + 300,
                                                rng.uniform(15, 85),
                                                rng.uniform(1e5, 6e5)))
    return tuple(sorted(passes, key=lambda p: p.set_s))


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> TwinResult:
    folder = tmp_path_factory.mktemp("sat")
    scenario = load_twin_scenario(_write(folder, DOC))
    return run_twin(replace(scenario, passes=_nightly(scenario)))


def test_a_chongqing_user_is_served_with_a_beijing_user_through_the_satellite(
        synthetic: TwinResult) -> None:
    """All its key crosses the satellite; it waits for the first passes, then is served."""
    [service] = synthetic.services
    assert service.served_fraction > 0.9
    assert service.satellite_bits == pytest.approx(service.served_bits)
    assert service.outages and service.outages[0].start == 0.0
    assert service.outages[0].end < DAY_S  # until both stations have seen a pass


def test_the_report_gives_its_share_served_and_its_waiting_between_passes(
        synthetic: TwinResult, tmp_path: Path) -> None:
    """The Satellite section: passes per station per week, key per pass, the pools, the
    demand served through the satellite with its share and waiting time."""
    page = write_report(synthetic, tmp_path).read_text()
    assert "<h2>Satellite</h2>" in page and "satellite_passes.png" in page
    [row] = list(csv.DictReader((tmp_path / "satellite_demands.csv").open()))
    [service] = synthetic.services
    assert row["demand"] == "cq-bj"
    assert float(row["served_fraction"]) == pytest.approx(service.served_fraction, abs=1e-3)
    assert float(row["satellite_share"]) == pytest.approx(1.0, abs=1e-3)
    assert 0 < float(row["longest_wait_h"]) < 24
    passes = list(csv.DictReader((tmp_path / "satellite_passes.csv").open()))
    assert len(passes) == len(synthetic.scenario.passes)
    assert all(100 <= float(p["key_kbit"]) <= 600 for p in passes)
    pools = list(csv.DictReader((tmp_path / "satellite_pools.csv").open()))
    assert len(pools) == len(synthetic.pool_times_s) and "chongqing-gs_kbit" in pools[0]


def test_the_satellite_pools_take_part_in_key_conservation(synthetic: TwinResult) -> None:
    """made = used + pooled + discarded, pool by pool; relayed key spent on both sides."""
    sat = synthetic.satellite
    assert sat is not None
    imbalance = sat.made_bits - sat.used_bits - sat.pooled_bits - sat.discarded_bits
    assert np.abs(imbalance).max() < 1e-6 * sat.made_bits.sum()
    assert sat.made_bits.sum() == pytest.approx(sum(p.key_bits for p in sat.passes))
    assert sat.used_bits.sum() == pytest.approx(2 * sat.relayed_bits.sum())
    fibre = synthetic.made_bits - synthetic.used_bits - synthetic.pooled_bits \
        - synthetic.discarded_bits
    assert np.abs(fibre).max() < 1e-6 * synthetic.made_bits.sum()


def test_without_a_satellite_the_chongqing_demand_is_refused_before_the_run(
        tmp_path: Path) -> None:
    """satellites: [] leaves Chongqing disconnected, refused with file, line and path."""
    path = _write(tmp_path, DOC + "satellites: []\n")
    with pytest.raises(ScenarioError) as error:
        load_twin_scenario(path)
    assert (error.value.source, error.value.line, error.value.path) == (str(path), 8,
                                                                       "demands[0]")
    assert "disconnected" in error.value.problem


def test_the_what_if_example_adds_four_satellites_and_a_ground_station() -> None:
    """Five satellites, a seventh station joined by satellite KM-links, five times the
    passes of one satellite."""
    scenario = load_twin_scenario(EXAMPLES / "twin-whatif-five-satellites.yaml", weeks=1)
    assert [s.id for s in scenario.satellites] == [f"jinan-{k}" for k in range(1, 6)]
    net = scenario.network
    assert net.node["wuhan-gs"].kind is NodeKind.GROUND_STATION
    assert sum(k.kind is KMLinkKind.SATELLITE and "wuhan-gs" in (k.a, k.b)
               for k in net.km_links) == 6
    assert "wuhan--wuhan-gs" in net.link
    one = scenario_passes(scenario.satellites[:1], net.nodes_of(NodeKind.GROUND_STATION),
                          WEEK_S)
    # five in one orbital plane, 20 minutes apart: about five times the passes of one
    for sat in scenario.satellites:
        mine = [p for p in scenario.passes if p.satellite == sat.id]
        assert 0.8 * len(one) <= len(mine) <= 1.2 * len(one)
    result = run_twin(replace(scenario, duration_s=2 * DAY_S, random_faults=False))
    assert result.satellite is not None and result.satellite.pooled_bits.shape == (5, 7)


@pytest.mark.parametrize(("text", "line", "where", "problem"), [
    ("satellites:\n  - {id: a}\n  - {id: a}\n", 12, "satellites[1].id", "named twice"),
    ("satellites:\n  - {id: a, tle: [x]}\n", 11, "satellites[0].tle", "two lines"),
    ("satellites:\n  - {id: a, tle: ['1 25544U', '2 25544']}\n", 11, "satellites[0].tle",
     "tle line 1: 8 characters"),
    ("add_ground_stations:\n  - {id: x-gs, lat: 30, lon: 100, attach: nowhere}\n", 11,
     "add_ground_stations[0].attach", "unknown node"),
    ("add_ground_stations:\n  - {id: beijing-gs, lat: 30, lon: 100, attach: wuhan}\n", 11,
     "add_ground_stations[0].id", "exists already"),
    ("add_ground_stations:\n  - {id: x-gs, lat: 95, lon: 100, attach: wuhan}\n", 11,
     "add_ground_stations[0]", "latitude"),
    ("satellite_pool_bits: 0\n", 10, "satellite_pool_bits", "more than 0 bits"),
])
def test_bad_satellites_and_ground_stations_are_refused_naming_file_line_and_path(
        tmp_path: Path, text: str, line: int, where: str, problem: str) -> None:
    """Each mistake is refused before the run with where it is and what is wrong."""
    path = _write(tmp_path, DOC + text)
    with pytest.raises(ScenarioError) as error:
        load_twin_scenario(path)
    assert (error.value.source, error.value.line, error.value.path) == (str(path), line, where)
    assert problem in error.value.problem


def test_the_twins_passes_come_from_the_orbit_model_at_night() -> None:
    """The twin's schedule is the quantum layer's: Jinan-1's passes over each station in
    the week, ordered by their end, each making key only in the dark (the sun below the
    horizon at the station at culmination) and at most the anchor's ~0.6 Mbit."""
    scenario = load_twin_scenario(EXAMPLES / "twin-whatif-five-satellites.yaml", weeks=1)
    stations = scenario.network.nodes_of(NodeKind.GROUND_STATION)
    passes = scenario_passes([TwinSatellite("s")], stations, WEEK_S)
    assert {p.station for p in passes} == {n.id for n in stations}
    assert [p.set_s for p in passes] == sorted(p.set_s for p in passes)
    keyed = [p for p in passes if p.key_bits > 0]
    assert 0 < len(keyed) < len(passes)  # daylight passes make none
    for p in keyed:
        node = scenario.network.node[p.station]
        sun = sun_elevation_deg(TWIN_EPOCH, p.culmination_s,
                                GroundStation(node.id, node.lat, node.lon))
        assert float(sun) < 0.0 and p.key_bits < 7e5 and 0 <= p.rise_s < p.set_s <= WEEK_S
