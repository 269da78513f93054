"""Scenario files: networks saved and loaded as YAML or JSON, and every bad file refused
with the file, the line and the path of the mistake."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import pytest

from qkdnet.errors import ScenarioError
from qkdnet.topology.cn_qcn import build_cn_qcn
from qkdnet.topology.generator import generate_network
from qkdnet.topology.model import KMLink, KMLinkKind, Multiplexing, Network, Node, NodeKind, QKDLink
from qkdnet.topology.scenario_file import load_network, save_network
from qkdnet.topology.validation import validated

MARK = "# <-"  # ends the line an error must point at


def _write(tmp_path: Path, text: str, name: str = "net.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _marked_line(text: str) -> int:
    [line] = [i for i, row in enumerate(text.splitlines(), 1) if row.rstrip().endswith(MARK)]
    return line


def _refusal(path: Path) -> ScenarioError:
    with pytest.raises(ScenarioError) as caught:
        load_network(path)
    return caught.value


def _assert_located(err: ScenarioError, path: Path, line: int, where: str) -> None:
    """The error names the file, the line and the document path, in one line of text."""
    assert (err.source, err.line, err.path) == (str(path), line, where)
    message = str(err)
    assert message.startswith(f"{path}:{line}: {where}: ")
    assert "\n" not in message


# --- round trips ------------------------------------------------------------------------

NETWORKS: dict[str, Callable[[], Network]] = {
    "cn-qcn": functools.cache(build_cn_qcn),
    "generated-300": functools.cache(lambda: generate_network(300, seed=4)),
}


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
@pytest.mark.parametrize("name", list(NETWORKS))
def test_a_saved_network_loads_back_equal(tmp_path: Path, name: str, suffix: str) -> None:
    """Saving and loading gives back an equal network, node by node and link by link."""
    network = NETWORKS[name]()
    path = save_network(network, tmp_path / f"net{suffix}")
    assert path == tmp_path / f"net{suffix}"
    assert load_network(path) == network


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_a_network_without_km_links_stays_without(tmp_path: Path, suffix: str) -> None:
    """An empty KM-link list is saved as such and not replaced by the default direct ones."""
    nodes = (Node("a", "A", NodeKind.BACKBONE_ACCESS, 39.9, 116.4),
             Node("b", "B", NodeKind.BACKBONE_ACCESS, 38.0, 117.0))
    network = validated(Network("bare", nodes, (QKDLink("a-b", "a", "b", 70.0, 14.0, "I"),)))
    loaded = load_network(save_network(network, tmp_path / f"bare{suffix}"))
    assert loaded == network
    assert loaded.km_links == ()


# --- a file written by hand -------------------------------------------------------------

MINIMAL = """\
# three sites on one line; ids, losses and KM-links left to the defaults
qkdnet_scenario: 1
name: hand-made
nodes:
  - {id: a, kind: backbone_access, lat: 39.9, lon: 116.4}
  - {id: b, kind: backbone_relay, lat: 38.0, lon: 117.0}
  - {id: c, kind: backbone_access, lat: 36.7, lon: 117.0}
qkd_links:
  - a: a
    b: b
    length_km: 70
    device_type: I
  - {a: b, b: c, length_km: 50, device_type: III}
"""


def test_a_minimal_hand_written_file_gets_the_documented_defaults(tmp_path: Path) -> None:
    """Links get ids "a--b" and 0.2 dB/km; each QKD-link gets one direct KM-link."""
    network = load_network(_write(tmp_path, MINIMAL))
    assert network.name == "hand-made"
    assert [n.id for n in network.nodes] == ["a", "b", "c"]
    assert [lk.id for lk in network.qkd_links] == ["a--b", "b--c"]
    assert [lk.loss_db for lk in network.qkd_links] == pytest.approx([14.0, 10.0])
    assert network.km_links == (
        KMLink("km:a~b", "a", "b", KMLinkKind.DIRECT, ("a--b",)),
        KMLink("km:b~c", "b", "c", KMLinkKind.DIRECT, ("b--c",)),
    )


def test_left_out_fields_take_their_defaults(tmp_path: Path) -> None:
    """A node is named by its id; a link has one device pair on WDM, full time, no field."""
    network = load_network(_write(tmp_path, MINIMAL))
    assert network.node["a"].name == "a"
    link = network.link["a--b"]
    assert (link.device_pairs, link.multiplexing, link.time_share) == (1, Multiplexing.WDM, 1.0)
    assert dict(link.field) == {}
    assert network.domains == () and network.regions == ()


# --- bad files, one mistake each, on the line marked "# <-" -----------------------------

HEAD = "qkdnet_scenario: 1\nname: tiny\n"
NODES = """\
nodes:
  - {id: a, kind: backbone_access, lat: 39.9, lon: 116.4, region: north}
  - {id: b, kind: backbone_relay, lat: 38.0, lon: 117.0, region: north}
  - {id: c, kind: backbone_relay, lat: 36.7, lon: 117.0, region: north}
  - {id: d, kind: backbone_access, lat: 34.3, lon: 117.2, region: north}
  - {id: g1, kind: ground_station, lat: 40.4, lon: 116.7, region: north}
"""
LINKS = """\
qkd_links:
  - {a: a, b: b, length_km: 70, device_type: I}
  - {a: b, b: c, length_km: 80, device_type: I}
  - {a: c, b: d, length_km: 90, device_type: I}
  - {a: a, b: g1, length_km: 30, device_type: V}
"""
BASE = HEAD + NODES + LINKS

BAD_FILES = [
    pytest.param(HEAD + NODES + """\
qkd_links:
  - {a: a, b: b, length_km: 70, device_type: I}
  - a: b
    b: x  # <-
    length_km: 80
    device_type: I
""", "qkd_links[1].b", "unknown node 'x'", id="unknown node in a link"),
    pytest.param(HEAD + """\
nodes:
  - {id: a, kind: backbone_access, lat: 39.9, lon: 116.4}
  - {id: b, kind: backbone_relay, lat: 38.0, lon: 117.0}
  - id: a  # <-
    kind: user
    lat: 39.8
    lon: 116.3
""", "nodes[2].id", "duplicate id 'a'", id="duplicate node id"),
    pytest.param(HEAD + NODES + """\
qkd_links:
  - a: a
    b: b
    length_km: -70  # <-
    device_type: I
""", "qkd_links[0].length_km", "must be > 0 km", id="negative length"),
    pytest.param(HEAD + NODES + """\
qkd_links:
  - {a: a, b: b, length_km: 70, device_type: I}
  - {a: b, b: a, length_km: 71, device_type: II}  # <-
""", "qkd_links[1]", "second link between", id="second link between the same nodes"),
    pytest.param(BASE + """\
km_links:
  - id: km-a-d
    a: a
    b: d
    kind: remote
    path:
      - a--b
      - c--d  # <-
""", "km_links[0].path[1]", "not connected", id="KM-link path not connected"),
    pytest.param(BASE + """\
km_links:
  - id: km-a-d
    a: a
    b: d
    kind: remote
    path: [a--b, b--c]  # <-
""", "km_links[0].path", "ends at 'c', not at 'd'", id="KM-link path ends elsewhere"),
    pytest.param(BASE + """\
km_links:
  - id: km-a-c
    a: a
    b: c
    kind: remote
    path:
      - a--b
      - b--x  # <-
""", "km_links[0].path[1]", "unknown QKD-link 'b--x'", id="KM-link path unknown link"),
    pytest.param(HEAD + NODES + """\
qkd_links:
  - a: a
    b: b
    length_km: 70
    device_type: IX  # <-
""", "qkd_links[0].device_type", "unknown device type 'IX'", id="unknown device type"),
    pytest.param(HEAD + NODES + """\
qkd_links:
  - a: a
    b: b
    length_km: 70
    device_type: I
    field:
      e_d: 0.01
      qber: 0.02  # <-
""", "qkd_links[0].field.qber", "unknown field parameter", id="unknown field parameter"),
    pytest.param(HEAD + NODES + """\
qkd_links:
  - a: a
    b: b
    length_km: 70
    los_db: 14  # <-
    device_type: I
""", "qkd_links[0].los_db", "Extra inputs", id="misspelt optional key"),
    pytest.param(HEAD + NODES + """\
qkd_links:
  - a: a
    b: b
    lenght_km: 70  # <-
    device_type: I
""", "qkd_links[0].lenght_km", "Extra inputs", id="misspelt required key"),
    pytest.param(HEAD + """\
nodes:
  - {id: a, lat: 39.9, lon: 116.4}  # <-
""", "nodes[0].kind", "Field required", id="missing node kind"),
    pytest.param(HEAD + """\
nodes:
  - {id: a, kind: backbone_access, lat: 39.9, lon: 116.4}
  - id: b  # <-
    kind: backbone_relay
    lon: 117.0
""", "nodes[1].lat", "Field required", id="missing latitude"),
    pytest.param(HEAD + """\
nodes:
  - id: a
    kind: backbone_access
    lat: north  # <-
    lon: 116.4
""", "nodes[0].lat", "valid number", id="latitude not a number"),
    pytest.param(HEAD + """\
nodes:
  - {id: a, kind: backbone_access, lat: 39.9, lon: 116.4}
  - id: b
    kind: satellite  # <-
    lat: 38.0
    lon: 117.0
""", "nodes[1].kind", "Input should be", id="unknown node kind"),
    pytest.param(HEAD + """\
nodes:
  - id: a
    kind: backbone_access
    lat: 99.9  # <-
    lon: 116.4
""", "nodes[0].lat", "outside [-90, 90]", id="latitude out of range"),
    pytest.param(HEAD + """\
regions: [{id: north}]
nodes:
  - {id: a, kind: backbone_access, lat: 39.9, lon: 116.4, region: north}
  - id: b
    kind: backbone_access
    lat: 38.0
    lon: 117.0
    region: nort  # <-
""", "nodes[1].region", "unknown region 'nort'", id="unknown region"),
    pytest.param(BASE + """\
km_links:
  - id: sat-a-g1
    a: a  # <-
    b: g1
    kind: satellite
""", "km_links[0].a", "ground stations", id="satellite KM-link from a fibre node"),
    pytest.param(BASE + """\
km_links:
  - id: km-a-c
    a: a
    b: c
    kind: direct
    path: [a--b, b--c]  # <-
""", "km_links[0].path", "exactly one QKD-link", id="direct KM-link over two links"),
    pytest.param(BASE + """\
km_links:
  - id: km-a-b
    a: a
    b: b
    kind: sideways  # <-
    path: [a--b]
""", "km_links[0].kind", "Input should be", id="unknown KM-link kind"),
    pytest.param(BASE + """\
domains:
  - id: backbone
    kind: backbone
    nodes: [a, b, z]  # <-
""", "domains[0].nodes", "unknown node 'z'", id="unknown domain member"),
    pytest.param("""\
name: tiny  # <-
nodes:
  - {id: a, kind: backbone_access, lat: 39.9, lon: 116.4}
""", "qkdnet_scenario", "Field required", id="missing format version"),
    pytest.param("""\
qkdnet_scenario: 2  # <-
name: tiny
nodes:
  - {id: a, kind: backbone_access, lat: 39.9, lon: 116.4}
""", "qkdnet_scenario", "Input should be 1", id="wrong format version"),
]


def test_the_base_of_the_bad_files_is_itself_good(tmp_path: Path) -> None:
    """Without a mistake the shared nodes and links load, so each case tests one mistake."""
    assert len(load_network(_write(tmp_path, BASE)).qkd_links) == 4


@pytest.mark.parametrize(("text", "where", "problem"), BAD_FILES)
def test_a_bad_file_is_refused_naming_file_line_and_path(
    tmp_path: Path, text: str, where: str, problem: str
) -> None:
    """The error points at the offending entry or key: file, line, document path, problem."""
    path = _write(tmp_path, text)
    err = _refusal(path)
    _assert_located(err, path, _marked_line(text), where)
    assert problem in err.problem


def test_invalid_yaml_is_refused_with_its_line(tmp_path: Path) -> None:
    """A YAML syntax error is a ScenarioError at the line the parser stopped on."""
    path = _write(tmp_path, "qkdnet_scenario: 1\nname: tiny: extra\nnodes: []\n")
    err = _refusal(path)
    assert (err.source, err.line) == (str(path), 2)
    assert "not valid YAML" in err.problem
    assert str(err).startswith(f"{path}:2: ")
    assert "\n" not in str(err)


def test_invalid_json_is_refused_with_its_line(tmp_path: Path) -> None:
    """A JSON syntax error in a .json file is a ScenarioError at the line of the mistake."""
    text = '{\n  "qkdnet_scenario": 1,\n  "name": "tiny",\n  "nodes": [,]\n}\n'
    path = _write(tmp_path, text, "net.json")
    err = _refusal(path)
    assert (err.source, err.line) == (str(path), 4)
    assert "not valid JSON" in err.problem
    assert str(err).startswith(f"{path}:4: ")


def test_a_missing_file_is_refused_naming_it(tmp_path: Path) -> None:
    """Reading a file that is not there is a ScenarioError that names the file."""
    path = tmp_path / "absent.yaml"
    err = _refusal(path)
    assert err.source == str(path)
    assert "cannot read" in err.problem
    assert str(err).startswith(f"{path}: ")


def test_a_file_that_is_not_utf8_text_is_refused_naming_it(tmp_path: Path) -> None:
    """Bytes that are not UTF-8 are a ScenarioError naming the file, not a decoding crash."""
    path = tmp_path / "binary.yaml"
    path.write_bytes(b"\xff\xfe\x00qkdnet_scenario: 1\n")
    err = _refusal(path)
    assert err.source == str(path)
    assert str(err).startswith(f"{path}:")


JSON_BAD_LINK = """\
{
  "qkdnet_scenario": 1,
  "name": "tiny",
  "nodes": [
    {"id": "a", "kind": "backbone_access", "lat": 39.9, "lon": 116.4},
    {"id": "b", "kind": "backbone_relay", "lat": 38.0, "lon": 117.0}
  ],
  "qkd_links": [
    {
      "a": "a",
      "b": "x",
      "length_km": 70,
      "device_type": "I"
    }
  ]
}
"""
JSON_BAD_LATITUDE = """\
{
  "qkdnet_scenario": 1,
  "name": "tiny",
  "nodes": [
    {
      "id": "a",
      "kind": "backbone_access",
      "lat": "north",
      "lon": 116.4
    }
  ]
}
"""


@pytest.mark.parametrize("indent", ["  ", "\t"], ids=["spaces", "tabs"])
@pytest.mark.parametrize(("text", "where", "line"), [
    pytest.param(JSON_BAD_LINK, "qkd_links[0].b", 11, id="unknown node"),
    pytest.param(JSON_BAD_LATITUDE, "nodes[0].lat", 8, id="latitude not a number"),
])
def test_json_files_get_line_numbers_too(
    tmp_path: Path, text: str, where: str, line: int, indent: str
) -> None:
    """A mistake in a pretty-printed JSON file is reported at its line, however indented."""
    path = _write(tmp_path, text.replace("  ", indent), "net.json")
    _assert_located(_refusal(path), path, line, where)


def test_refusing_a_file_loses_nothing(tmp_path: Path) -> None:
    """A refused file is left byte for byte as it was, and nothing else is written."""
    path = _write(tmp_path, BASE + "km_links:\n  - {a: a, b: x, kind: remote, path: [a--b]}\n")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    _refusal(path)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_the_example_scenario_in_examples_loads() -> None:
    """The README's example file is a valid scenario with its ring intact."""
    from qkdnet.topology.paths import edge_disjoint_paths

    example = Path(__file__).resolve().parents[2] / "examples" / "three-city-ring.yaml"
    net = load_network(example)
    assert len(edge_disjoint_paths(net, "hefei", "shanghai")) == 2
    assert net.link["sh-m1--sh-u1"].multiplexing is Multiplexing.OPTICAL_SWITCH
