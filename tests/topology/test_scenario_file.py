"""Scenario files as text: networks formatted and parsed as YAML or JSON, and every bad
document refused with its source, the line and the path of the mistake."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable

import pytest

from qkdnet.errors import ScenarioError
from qkdnet.topology.cn_qcn import build_cn_qcn
from qkdnet.topology.generator import generate_network
from qkdnet.topology.model import KMLink, KMLinkKind, Multiplexing, Network, Node, NodeKind, QKDLink
from qkdnet.topology.scenario_file import DocumentFormat, format_network, parse_network
from qkdnet.topology.validation import validated

MARK = "# <-"  # ends the line an error must point at
SOURCE = "net.yaml"
FORMATS: list[DocumentFormat] = ["yaml", "json"]


def _parse(text: str, fmt: DocumentFormat = "yaml") -> Network:
    return parse_network(text, SOURCE, fmt)


def _marked_line(text: str) -> int:
    [line] = [i for i, row in enumerate(text.splitlines(), 1) if row.rstrip().endswith(MARK)]
    return line


def _refusal(text: str, fmt: DocumentFormat = "yaml") -> ScenarioError:
    with pytest.raises(ScenarioError) as caught:
        _parse(text, fmt)
    return caught.value


def _assert_located(err: ScenarioError, line: int, where: str) -> None:
    """The error names the source, the line and the document path, in one line of text."""
    assert (err.source, err.line, err.path) == (SOURCE, line, where)
    message = str(err)
    assert message.startswith(f"{SOURCE}:{line}: {where}: ")
    assert "\n" not in message


# --- round trips ------------------------------------------------------------------------

NETWORKS: dict[str, Callable[[], Network]] = {
    "cn-qcn": functools.cache(build_cn_qcn),
    "generated-300": functools.cache(lambda: generate_network(300, seed=4)),
}


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", list(NETWORKS))
def test_a_formatted_network_parses_back_equal(name: str, fmt: DocumentFormat) -> None:
    """Formatting and parsing gives back an equal network, node by node and link by link."""
    network = NETWORKS[name]()
    assert _parse(format_network(network, fmt), fmt) == network


def test_json_format_is_strict_json() -> None:
    """The JSON text is a document json.loads reads, with the format version first."""
    document = json.loads(format_network(NETWORKS["generated-300"](), "json"))
    assert next(iter(document.items())) == ("qkdnet_scenario", 1)


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_network_without_km_links_stays_without(fmt: DocumentFormat) -> None:
    """An empty KM-link list is written as such and not replaced by the default direct ones."""
    nodes = (Node("a", "A", NodeKind.BACKBONE_ACCESS, 39.9, 116.4),
             Node("b", "B", NodeKind.BACKBONE_ACCESS, 38.0, 117.0))
    network = validated(Network("bare", nodes, (QKDLink("a-b", "a", "b", 70.0, 14.0, "I"),)))
    loaded = _parse(format_network(network, fmt), fmt)
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


def test_a_minimal_hand_written_file_gets_the_documented_defaults() -> None:
    """Links get ids "a--b" and 0.2 dB/km; each QKD-link gets one direct KM-link."""
    network = _parse(MINIMAL)
    assert network.name == "hand-made"
    assert [n.id for n in network.nodes] == ["a", "b", "c"]
    assert [lk.id for lk in network.qkd_links] == ["a--b", "b--c"]
    assert [lk.loss_db for lk in network.qkd_links] == pytest.approx([14.0, 10.0])
    assert network.km_links == (
        KMLink("km:a~b", "a", "b", KMLinkKind.DIRECT, ("a--b",)),
        KMLink("km:b~c", "b", "c", KMLinkKind.DIRECT, ("b--c",)),
    )


def test_left_out_fields_take_their_defaults() -> None:
    """A node is named by its id; a link has one device pair on WDM, full time, no field."""
    network = _parse(MINIMAL)
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
    pytest.param(BASE + """\
domains:
  - id: backbone
    kind: backbone
    nodes: [a, b]
    managed_by: "op-x "  # <-
""", "domains[0].managed_by", "trailing spaces", id="operator with a trailing space"),
    pytest.param(BASE + """\
domains:
  - id: backbone
    kind: backbone
    nodes: [a, b]
    managed_by: [op-x]  # <-
""", "domains[0].managed_by", "valid string", id="operator not a string"),
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


@pytest.mark.parametrize("fmt", FORMATS)
def test_domain_operators_round_trip_and_stay_absent_when_unset(fmt: DocumentFormat) -> None:
    """``managed_by`` is read, written back and parsed equal; a domain without one is
    written without the key (documents of unmarked scenarios are unchanged)."""
    network = _parse(BASE + """\
domains:
  - {id: west, kind: backbone, nodes: [a, b], managed_by: op-west}
  - {id: east, kind: backbone, nodes: [b, c]}
""")
    assert [d.managed_by for d in network.domains] == ["op-west", ""]
    text = format_network(network, fmt)
    assert _parse(text, fmt) == network
    assert text.count("managed_by") == 1


def test_the_base_of_the_bad_files_is_itself_good() -> None:
    """Without a mistake the shared nodes and links parse, so each case tests one mistake."""
    assert len(_parse(BASE).qkd_links) == 4


@pytest.mark.parametrize(("text", "where", "problem"), BAD_FILES)
def test_a_bad_file_is_refused_naming_file_line_and_path(
    text: str, where: str, problem: str
) -> None:
    """The error points at the offending entry or key: source, line, document path, problem."""
    err = _refusal(text)
    _assert_located(err, _marked_line(text), where)
    assert problem in err.problem


def test_invalid_yaml_is_refused_with_its_line() -> None:
    """A YAML syntax error is a ScenarioError at the line the parser stopped on."""
    err = _refusal("qkdnet_scenario: 1\nname: tiny: extra\nnodes: []\n")
    assert (err.source, err.line) == (SOURCE, 2)
    assert "not valid YAML" in err.problem
    assert str(err).startswith(f"{SOURCE}:2: ")
    assert "\n" not in str(err)


def test_invalid_json_is_refused_with_its_line() -> None:
    """A JSON syntax error in JSON text is a ScenarioError at the line of the mistake."""
    err = _refusal('{\n  "qkdnet_scenario": 1,\n  "name": "tiny",\n  "nodes": [,]\n}\n', "json")
    assert (err.source, err.line) == (SOURCE, 4)
    assert "not valid JSON" in err.problem
    assert str(err).startswith(f"{SOURCE}:4: ")


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
def test_json_files_get_line_numbers_too(text: str, where: str, line: int, indent: str) -> None:
    """A mistake in a pretty-printed JSON file is reported at its line, however indented."""
    _assert_located(_refusal(text.replace("  ", indent), "json"), line, where)
