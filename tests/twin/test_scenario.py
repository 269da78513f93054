"""Twin scenarios are checked before a run: what is impossible is refused by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from qkdnet.errors import ScenarioError
from qkdnet.twin.scenario import load_twin_scenario
from qkdnet.units import WEEK_S

GOOD = """\
qkdnet_twin: 1
network: cn-qcn
weeks: 2
seed: 7
demands:
  - {id: otp-1, source: harbin, target: shenzhen, rate_bps: 10000}
faults:
  - {link: beijing--beijing-xiongan-r1, at_h: 100, duration_h: 3}
remove_links: [hefei--luan]
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "twin.yaml"
    path.write_text(text)
    return path


def test_a_good_scenario_loads_with_its_network_demands_and_faults(tmp_path: Path) -> None:
    """Weeks become seconds, scripted faults hours; removed links are gone."""
    scenario = load_twin_scenario(_write(tmp_path, GOOD))
    assert scenario.duration_s == 2 * WEEK_S and scenario.seed == 7
    [demand] = scenario.demands
    assert (demand.source, demand.target, demand.rate_bps) == ("harbin", "shenzhen", 10000)
    [fault] = scenario.faults
    assert (fault.start_s, fault.duration_s) == (100 * 3600, 3 * 3600)
    assert "hefei--luan" not in scenario.network.link
    assert all("hefei--luan" not in k.path for k in scenario.network.km_links)


@pytest.mark.parametrize(("change", "line", "where", "problem"), [
    (("weeks: 2", "weeks: -1"), 3, "weeks", "more than 0 weeks"),
    (("target: shenzhen", "target: atlantis"), 6, "demands[0].target", "unknown node"),
    (("target: shenzhen", "target: xinjiang-gs-nowhere"), 6, "demands[0].target",
     "unknown node"),
    (("link: beijing--beijing-xiongan-r1", "link: nowhere--else"), 8, "faults[0].link",
     "unknown QKD-link"),
    (("duration_h: 3", "duration_h: -3"), 8, "faults[0].duration_h", "more than 0 h"),
    (("at_h: 100", "at_h: 1000"), 8, "faults[0].at_h", "outside the run"),
    (("[hefei--luan]", "[hefei--nowhere]"), 9, "remove_links[0]", "unknown QKD-link"),
    (("network: cn-qcn", "network: atlantis.yaml"), 2, "network", "neither a built-in"),
    (("seed: 7", "sead: 7"), 4, "sead", "Extra inputs"),
])
def test_impossible_scenarios_are_refused_naming_file_line_and_path(
        tmp_path: Path, change: tuple[str, str], line: int, where: str, problem: str) -> None:
    """Each mistake is refused before the run with where it is and what is wrong."""
    path = _write(tmp_path, GOOD.replace(*change))
    with pytest.raises(ScenarioError) as error:
        load_twin_scenario(path)
    assert (error.value.source, error.value.line, error.value.path) == (str(path), line, where)
    assert problem in error.value.problem


def test_a_demand_between_disconnected_nodes_is_refused(tmp_path: Path) -> None:
    """Cut the only links of a chain end: a demand to it has no route at all."""
    text = GOOD.replace("target: shenzhen", "target: daqing").replace(
        "[hefei--luan]", "[harbin--harbin-daqing-r1]")
    with pytest.raises(ScenarioError) as error:
        load_twin_scenario(_write(tmp_path, text))
    assert error.value.path == "demands[0]" and "disconnected" in error.value.problem


def test_a_network_file_beside_the_scenario_is_used(tmp_path: Path) -> None:
    """``network:`` may name a scenario file next to the twin file."""
    from qkdnet.files.networks import load_network

    example = Path(__file__).resolve().parents[2] / "examples" / "three-city-ring.yaml"
    (tmp_path / "ring.yaml").write_text(example.read_text())
    text = ("qkdnet_twin: 1\nnetwork: ring.yaml\nweeks: 1\n"
            "demands:\n  - {id: d, source: hefei, target: sh-u1}\n")
    scenario = load_twin_scenario(_write(tmp_path, text))
    assert scenario.network == load_network(tmp_path / "ring.yaml")
