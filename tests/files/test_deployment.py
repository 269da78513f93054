"""Deployment files: the example loads, nodes land in processes and ports as the format
says, and every mistake is refused naming the file, the line and the path."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from qkdnet.errors import ScenarioError
from qkdnet.files.deployment import (
    Deployment,
    deployment_document,
    format_deployment,
    load_deployment,
    parse_deployment,
)
from qkdnet.topology.scenarios import BUILT_IN
from qkdnet.topology.served import served_nodes

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
# Served nodes of the ring, in scenario order: hefei, nanjing, shanghai, sh-m1 (region east).
BASE = """\
qkdnet_deployment: 1
scenario: ring.yaml
hosts:
  - {id: h1, address: 10.0.0.1}
  - {id: h2, address: kme-2.example.net}
processes:
  - {id: west, host: h1, nodes: [nanjing, hefei], kme_port: 8443, km_port: 9443}
  - {id: rest, host: h2, regions: [east], kme_port: 8443, km_port: 9443}
controller: {host: h1, port: 7000}
ems:
  - {region: east, host: h2, port: 7100}
nms: {host: h1, port: 8080}
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    shutil.copy(EXAMPLES / "three-city-ring.yaml", tmp_path / "ring.yaml")
    return tmp_path


def _load(folder: Path, text: str) -> Deployment:
    path = folder / "dep.yaml"
    path.write_text(text)
    return load_deployment(path)


def test_the_cn_qcn_example_places_every_served_node_once() -> None:
    """examples/cn-qcn-deployment.yaml: 7 region processes on 127.0.0.1, every KM node once."""
    d = load_deployment(EXAMPLES / "cn-qcn-deployment.yaml")
    network = BUILT_IN["cn-qcn"]()
    assert [p.id for p in d.processes] == [r.id for r in network.regions]
    assert sorted(d.nodes) == sorted(served_nodes(network))
    assert len(d.nodes) == len(set(d.nodes)) == 217
    assert all(network.node[n].region == d.process_of(n).id for n in d.nodes)
    assert len(d.processes_on("local")) == 7 and d.processes_on("elsewhere") == ()
    assert [e.region for e in d.ems] == [r.id for r in network.regions]
    assert d.nms_address() == ("127.0.0.1", 8080)
    assert d.nms_intake_address() == ("127.0.0.1", 8081)  # ems_port: port + 1 by default
    assert d.network == network


def test_a_process_serves_its_nodes_on_consecutive_ports_in_scenario_order(
        folder: Path) -> None:
    """Named nodes go first to their process; a region process takes the rest, in order."""
    d = _load(folder, BASE)
    west, rest = d.processes
    assert west.nodes == ("hefei", "nanjing")  # the scenario's order, not the file's
    assert rest.nodes == ("shanghai", "sh-m1")
    assert d.kme_url("nanjing") == "https://10.0.0.1:8444"
    assert d.kme_url("sh-m1") == "https://kme-2.example.net:8444"
    assert d.km_address("shanghai") == ("kme-2.example.net", 9443)
    assert d.process_of("hefei") is west
    assert d.controller_address() == ("10.0.0.1", 7000)
    assert d.ems_address("east") == ("kme-2.example.net", 7100)


def test_an_ipv6_host_is_bracketed_in_urls(folder: Path) -> None:
    """An IPv6 literal is written [addr]:port in a KME's URL (RFC 3986)."""
    d = _load(folder, BASE.replace("10.0.0.1", "fd00::1"))
    assert d.kme_url("hefei") == "https://[fd00::1]:8443"


def test_a_written_deployment_loads_back_equal(folder: Path) -> None:
    """deployment_document, written as YAML beside the same scenario, loads back equal."""
    d = _load(folder, BASE)
    again = _load(folder, format_deployment(deployment_document(d)))
    assert again == d


@pytest.mark.parametrize(("old", "new", "line", "path", "problem"), [
    ("scenario: ring.yaml", "scenario: atlantis", 2, "scenario",
     "'atlantis' is neither a built-in scenario"),
    ("address: kme-2.example.net", "address: not a host!", 5, "hosts[1].address",
     "'not a host!' is neither an IP address nor a host name"),
    ("address: 10.0.0.1", "address: 10.0.0.300", 4, "hosts[0].address",
     "neither an IP address nor a host name"),
    ("id: h2", "id: h1", 5, "hosts[1].id", "duplicate id 'h1'"),
    ("id: rest", "id: west", 8, "processes[1].id", "duplicate id 'west'"),
    ("id: rest", "id: Rest_1", 8, "processes[1].id", "'Rest_1' is not a valid id"),
    ("host: h2, regions", "host: h9, regions", 8, "processes[1].host", "unknown host 'h9'"),
    ("controller: {host: h1", "controller: {host: h3", 9, "controller.host",
     "unknown host 'h3'"),
    ("regions: [east]", "regions: [west]", 8, "processes[1].regions[0]",
     "unknown region 'west'"),
    ("[nanjing, hefei]", "[nanjing, paris]", 7, "processes[0].nodes[1]",
     "unknown node 'paris'"),
    ("[nanjing, hefei]", "[nanjing, sh-u1]", 7, "processes[0].nodes[1]",
     "node 'sh-u1' runs no KM"),
    ("[nanjing, hefei]", "[nanjing, hefei, nanjing]", 7, "processes[0].nodes[2]",
     "node 'nanjing' is placed twice (also at processes[0].nodes[0])"),
    ("regions: [east]", "regions: [east], nodes: [hefei]", 8, "processes[1].nodes[0]",
     "node 'hefei' is placed twice"),
    ("regions: [east]", "nodes: [shanghai]", 6, "processes",
     "1 node(s) that run a KM are placed in no process: sh-m1"),
    ("regions: [east]", "regions: []", 8, "processes[1]", "names no nodes and no regions"),
    ("host: h2, regions", "host: h1, regions", 8, "processes[1].kme_port",
     "ports 8443..8444 on host 'h1' clash with processes[0].kme_port (ports 8443..8444)"),
    ("controller: {host: h1, port: 7000}", "controller: {host: h1, port: 8444}", 9,
     "controller.port", "port 8444 on host 'h1' clashes with processes[0].kme_port"),
    ("region: east, host: h2, port: 7100", "region: east, host: h2, port: 9443", 11,
     "ems[0].port", "port 9443 on host 'h2' clashes with processes[1].km_port (port 9443)"),
    ("kme_port: 8443, km_port: 9443}\n  - {id: rest", "kme_port: 65535, km_port: 9443}\n"
     "  - {id: rest", 7, "processes[0].kme_port", "ports 65535..65536 are outside 1..65535"),
    ("nms: {host: h1, port: 8080}", "nms: {host: h1, port: 0}", 12, "nms.port",
     "port 0 is outside 1..65535"),
    ("nms: {host: h1, port: 8080}", "nms: {host: h1, port: 7000}", 12, "nms.port",
     "port 7000 on host 'h1' clashes with controller.port"),
    ("nms: {host: h1, port: 8080}", "nms: {host: h1, port: 6999}", 12, "nms.ems_port",
     "port 7000 on host 'h1' clashes with controller.port"),
    ("nms: {host: h1, port: 8080}", "nms: {host: h1, port: 8080, ems_port: 9443}", 12,
     "nms.ems_port", "port 9443 on host 'h1' clashes with processes[0].km_port"),
    ("ems:\n  - {region: east, host: h2, port: 7100}", "ems: []", 10, "ems",
     "no EMS for region(s) east"),
    ("region: east, host", "region: north, host", 11, "ems[0].region",
     "unknown region 'north'"),
    ("port: 7100}", "port: 7100}\n  - {region: east, host: h1, port: 7100}", 12,
     "ems[1].region", "a second EMS for region 'east' (also ems[0])"),
    ("kme_port: 8443, km_port: 9443}\n  - {id: rest", "kme_prot: 8443, km_port: 9443}\n"
     "  - {id: rest", 7, "processes[0].kme_prot", "Extra inputs are not permitted"),
])
def test_each_mistake_names_file_line_and_path(folder: Path, old: str, new: str, line: int,
                                               path: str, problem: str) -> None:
    """Every check of the format, with the line of the mistake."""
    assert old in BASE
    with pytest.raises(ScenarioError) as caught:
        _load(folder, BASE.replace(old, new, 1))
    err = caught.value
    assert (err.source, err.line, err.path) == (str(folder / "dep.yaml"), line, path)
    assert problem in err.problem
    assert str(err).startswith(f"{folder / 'dep.yaml'}:{line}: {path}: ")


def test_a_mistake_in_the_scenario_names_the_scenario_file(folder: Path) -> None:
    """The scenario's own errors point into the scenario file, not the deployment."""
    ring = folder / "ring.yaml"
    ring.write_text(ring.read_text().replace("a: hefei, b: nanjing", "a: hefei, b: paris"))
    with pytest.raises(ScenarioError) as caught:
        _load(folder, BASE)
    assert caught.value.source == str(ring) and caught.value.path == "qkd_links[0].b"


def test_all_nodes_places_user_nodes_without_saes_too() -> None:
    """all_nodes: region processes take the user nodes as `serve --all-nodes` runs them."""
    text = (EXAMPLES / "cn-qcn-deployment.yaml").read_text()
    text = text.replace("scenario: cn-qcn", "scenario: cn-qcn\nall_nodes: true")
    with pytest.raises(ScenarioError) as caught:  # the regions' port ranges now overlap
        parse_deployment(text, "dep.yaml", "yaml")
    assert "clash" in caught.value.problem
    for i, old in enumerate(("8400", "8500", "8600", "8700", "8800", "8900", "9000")):
        text = text.replace(f"kme_port: {old}", f"kme_port: {10000 + 7000 * i}")
    d = parse_deployment(text, "dep.yaml", "yaml")
    assert sorted(d.nodes) == sorted(served_nodes(d.network, everything=True))


def test_a_bad_document_is_refused_before_the_scenario_is_read() -> None:
    """Not YAML, or the wrong version, is refused with the line."""
    with pytest.raises(ScenarioError) as caught:
        parse_deployment("qkdnet_deployment: 2\n", "dep.yaml", "yaml")
    assert (caught.value.line, caught.value.path) == (1, "qkdnet_deployment")
    assert yaml.safe_load(BASE)["qkdnet_deployment"] == 1


# The metro KM-link shanghai~sh-m1 crosses processes: a border KM-link, given to vendor
# devices; the emulated devices of any other border KM-link run in the devices service.
VENDOR = BASE.replace("[nanjing, hefei]", "[nanjing, hefei, sh-m1]") + """\
devices: {host: h2, port: 7300}
vendor_devices:
  - km_link: km-shanghai-metro
    a: {url: "https://qkd-sh.example.net:8443/", ca: dev/ca.crt, cert: dev/a.crt, key: dev/a.key}
    b: {url: "https://10.9.0.2", ca: dev/ca.crt, cert: dev/b.crt, key: dev/b.key,
        peer_sae_id: QKD-SH-01}
    key_size: 256
"""


@pytest.fixture
def vendor_folder(folder: Path) -> Path:
    (folder / "dev").mkdir()
    for name in ("ca.crt", "a.crt", "a.key", "b.crt", "b.key"):
        (folder / "dev" / name).write_text("PEM\n")
    return folder


def test_a_kmlink_inside_one_process_may_have_vendor_devices(vendor_folder: Path) -> None:
    """hefei and nanjing share a process: their KM-link may still take its key from a
    vendor device pair (every QKD-link of a carrier has real devices)."""
    d = _load(vendor_folder, VENDOR.replace("km_link: km-shanghai-metro",
                                            "km_link: km-hefei-nanjing"))
    assert "km-hefei-nanjing" not in d.border_links
    assert d.vendor_devices["km-hefei-nanjing"].a.peer_sae_id == "nanjing"


def test_devices_and_vendor_devices_are_placed_as_written(vendor_folder: Path) -> None:
    """The devices service's address; a vendor link's ends with files resolved beside the
    deployment, the other node's id as the peer SAE ID unless given; written back equal."""
    d = _load(vendor_folder, VENDOR)
    assert d.border_links == ("km-shanghai-metro",)
    assert d.devices_address() == ("kme-2.example.net", 7300)
    vendor = d.vendor_devices["km-shanghai-metro"]
    assert vendor.a.url == "https://qkd-sh.example.net:8443"
    assert vendor.a.cert == (vendor_folder / "dev" / "a.crt").resolve()
    assert vendor.a.peer_sae_id == "sh-m1" and vendor.b.peer_sae_id == "QKD-SH-01"
    assert vendor.key_bits == 256 and vendor.end(False) is vendor.b
    again = _load(vendor_folder, format_deployment(deployment_document(d)))
    assert again == d
    with pytest.raises(KeyError):
        _load(vendor_folder, BASE).devices_address()


@pytest.mark.parametrize(("old", "new", "line", "path", "problem"), [
    ("km_link: km-shanghai-metro", "km_link: km-paris", 15, "vendor_devices[0].km_link",
     "unknown KM-link 'km-paris'"),
    ("km_link: km-shanghai-metro", "km_link: km-nanjing-shanghai", 15,
     "vendor_devices[0].km_link", "'km-nanjing-shanghai' is not a direct KM-link"),
    ("cert: dev/a.crt", "cert: dev/missing.crt", 16, "vendor_devices[0].a.cert",
     "no file"),
    ("key: dev/b.key", "key: dev/nope.key", 17, "vendor_devices[0].b.key", "no file"),
    ('"https://10.9.0.2"', '"http://10.9.0.2"', 17, "vendor_devices[0].b.url",
     "'http://10.9.0.2' is not an https URL"),
    ('"https://qkd-sh.example.net:8443/"', '"https://qkd-sh.example.net:port"', 16,
     "vendor_devices[0].a.url", "is not an https URL"),
    ("key_size: 256", "key_size: 100", 19, "vendor_devices[0].key_size",
     "100 bits is not a positive multiple of 256"),
    ("devices: {host: h2, port: 7300}", "devices: {host: h3, port: 7300}", 13,
     "devices.host", "unknown host 'h3'"),
    ("devices: {host: h2, port: 7300}", "devices: {host: h2, port: 7100}", 13,
     "devices.port", "port 7100 on host 'h2' clashes with ems[0].port"),
    ("peer_sae_id: QKD-SH-01", "peer_sae: QKD-SH-01", 18, "vendor_devices[0].b.peer_sae",
     "Extra inputs are not permitted"),
])
def test_each_devices_mistake_names_file_line_and_path(vendor_folder: Path, old: str, new: str,
                                                       line: int, path: str,
                                                       problem: str) -> None:
    """Every check of the devices and vendor_devices entries, with the line."""
    assert old in VENDOR
    with pytest.raises(ScenarioError) as caught:
        _load(vendor_folder, VENDOR.replace(old, new, 1))
    err = caught.value
    assert (err.line, err.path) == (line, path), str(err)
    assert problem in err.problem
    assert str(err).startswith(f"{vendor_folder / 'dep.yaml'}:{line}: {path}: ")


def test_a_second_vendor_entry_for_a_link_is_refused(vendor_folder: Path) -> None:
    """A border KM-link has one device pair."""
    entry = VENDOR[VENDOR.index("  - km_link"):]
    with pytest.raises(ScenarioError) as caught:
        _load(vendor_folder, VENDOR + entry)
    assert caught.value.path == "vendor_devices[1].km_link"
    assert "named twice" in caught.value.problem


def test_a_host_needs_only_the_vendor_files_of_the_nodes_it_runs(vendor_folder: Path) -> None:
    """End b's files (sh-m1, process west) missing: loading for the nodes of process rest
    (end a, shanghai) or for none passes; for west's nodes it names the file."""
    (vendor_folder / "dev" / "b.key").unlink()
    path = vendor_folder / "dep.yaml"
    path.write_text(VENDOR)
    d = load_deployment(path, vendor_files_at=("shanghai",))
    assert d.vendor_devices["km-shanghai-metro"].b.key == (vendor_folder / "dev" / "b.key"
                                                           ).resolve()
    load_deployment(path, vendor_files_at=())
    with pytest.raises(ScenarioError) as caught:
        load_deployment(path, vendor_files_at=d.process("west").nodes)
    assert (caught.value.line, caught.value.path) == (17, "vendor_devices[0].b.key")
