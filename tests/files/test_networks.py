"""Networks from and to files: saved and loaded back equal, opened by built-in name or path,
and a refused file left as it was."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from qkdnet.errors import ScenarioError
from qkdnet.files.networks import load_network, open_network, save_network
from qkdnet.topology.generator import generate_network
from qkdnet.topology.model import Multiplexing, Network
from qkdnet.topology.paths import edge_disjoint_paths

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "three-city-ring.yaml"


@pytest.fixture(scope="module")
def network() -> Network:
    return generate_network(120, seed=4)


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_a_saved_network_loads_back_equal(tmp_path: Path, network: Network,
                                          suffix: str) -> None:
    """Saving and loading gives back an equal network; save returns the path it wrote."""
    path = save_network(network, tmp_path / f"net{suffix}")
    assert path == tmp_path / f"net{suffix}"
    assert load_network(path) == network


@pytest.mark.parametrize(("suffix", "parse"), [(".json", json.loads),
                                               (".yaml", yaml.safe_load)])
def test_the_suffix_picks_the_written_format(tmp_path: Path, network: Network, suffix: str,
                                            parse: Callable[[str], Any]) -> None:
    """A .json file is JSON and a .yaml file YAML, each holding the network's name."""
    text = save_network(network, tmp_path / f"net{suffix}").read_text(encoding="utf-8")
    assert parse(text)["name"] == network.name
    assert text.lstrip().startswith("{") == (suffix == ".json")


def test_a_bad_file_is_refused_naming_the_file_and_line(tmp_path: Path) -> None:
    """The error carries the file's path as its source, then the line and document path."""
    path = tmp_path / "net.yaml"
    path.write_text("qkdnet_scenario: 1\nname: t\nnodes:\n"
                    "  - {id: a, kind: backbone_access, lat: 30, lon: 110}\n"
                    "qkd_links:\n  - {a: a, b: c, length_km: 70, device_type: I}\n",
                    encoding="utf-8")
    with pytest.raises(ScenarioError) as caught:
        load_network(path)
    assert str(caught.value) == f"{path}:6: qkd_links[0].b: unknown node 'c'"


def test_refusing_a_file_loses_nothing(tmp_path: Path) -> None:
    """A refused file is left byte for byte as it was, and nothing else is written."""
    path = tmp_path / "net.yaml"
    path.write_text("qkdnet_scenario: 1\nname: t\nnodes: []\n"
                    "km_links:\n  - {a: a, b: x, kind: remote, path: [a--b]}\n",
                    encoding="utf-8")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(ScenarioError):
        load_network(path)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_the_example_scenario_in_examples_loads() -> None:
    """The README's example file is a valid scenario with its ring intact."""
    net = load_network(EXAMPLE)
    assert len(edge_disjoint_paths(net, "hefei", "shanghai")) == 2
    assert net.link["sh-m1--sh-u1"].multiplexing is Multiplexing.OPTICAL_SWITCH


def test_open_network_takes_a_built_in_name_or_a_path() -> None:
    """``cn-qcn`` is the built-in scenario; any other spec is a scenario file's path."""
    assert open_network("cn-qcn").name == "cn-qcn"
    assert open_network(str(EXAMPLE)) == load_network(EXAMPLE)


def test_open_network_refuses_what_is_neither(tmp_path: Path) -> None:
    """A spec that is no built-in name and no file is refused, naming the option."""
    with pytest.raises(ScenarioError) as caught:
        open_network(str(tmp_path / "atlantis"))
    assert str(caught.value) == (f"--scenario: '{tmp_path / 'atlantis'}' is neither a "
                                 "built-in scenario (cn-qcn) nor a file")
