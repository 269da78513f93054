"""Services and their ITU-T Y.3807 QoS: an SAE pair whose every route is broken is unserved,
with a service-unserved alarm filed under the stopped node and names the cut link too; once
repaired it is served again, with its restoration time and availability; a switch to the
backup or a refusal degrades it; the Prometheus families name their Y.3807 parameter; a
twin demand's QoS comes from its outages and key served."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from qkdnet.files.networks import load_network
from qkdnet.keys.route import Route
from qkdnet.management.availability import outages
from qkdnet.management.monitor import NetworkMonitor
from qkdnet.management.om_view import OmView
from qkdnet.management.service_metrics import service_exposition
from qkdnet.management.services import RequestCounts, ServiceRoutes, twin_qos
from qkdnet.management.telemetry import KMLinkTelemetry, LinkTelemetry, NodeHealth
from qkdnet.topology.model import Network

# a diamond: a--b--d is the working route of a to d, a--c--d its backup
DIAMOND = """\
qkdnet_scenario: 1
name: diamond
nodes:
  - {id: a, kind: backbone_access, lat: 30, lon: 110}
  - {id: b, kind: backbone_relay, lat: 30.3, lon: 110.3}
  - {id: c, kind: backbone_relay, lat: 29.7, lon: 110.3}
  - {id: d, kind: backbone_access, lat: 30, lon: 110.6}
qkd_links:
  - {a: a, b: b, length_km: 40, device_type: I}
  - {a: b, b: d, length_km: 40, device_type: I}
  - {a: a, b: c, length_km: 40, device_type: I}
  - {a: c, b: d, length_km: 40, device_type: I}
saes:
  - {id: sae-a, node: a}
  - {id: sae-d, node: d}
"""

SERVICE = "sae-a->sae-d"


@pytest.fixture
def diamond(tmp_path: Path) -> Network:
    (tmp_path / "diamond.yaml").write_text(DIAMOND)
    return load_network(tmp_path / "diamond.yaml")


def _route(network: Network, *nodes: str) -> Route:
    km = {frozenset((k.a, k.b)): k.id for k in network.km_links}
    return Route(nodes, tuple(km[frozenset(p)] for p in itertools.pairwise(nodes)))


def _report(monitor: NetworkMonitor, t: float, stopped: set[str], cut: set[str]) -> None:
    """One report of the diamond: ``stopped`` nodes, ``cut`` QKD-links (and every link of a
    stopped node) down, with the KM-links over them."""
    net = monitor.network
    down = {lk.id for lk in net.qkd_links if lk.id in cut or {lk.a, lk.b} & stopped}
    ids = tuple(lk.id for lk in net.qkd_links)
    up = np.array([i not in down for i in ids])
    km_ids = tuple(k.id for k in net.km_links)
    km_up = np.array([not set(k.path) & down for k in net.km_links])
    nodes = tuple(n.id for n in net.nodes)
    monitor.report(LinkTelemetry(t, ids, np.where(up, 5e3, 0.0), np.full(len(ids), 0.02), up,
                                 np.zeros(len(ids), dtype=bool)),
                   KMLinkTelemetry(t, km_ids, np.full(len(km_ids), 1e5),
                                   np.full(len(km_ids), 5e3), km_up),
                   NodeHealth(t, nodes, np.array([n not in stopped for n in nodes]),
                              np.ones(len(nodes), dtype=bool)))


def test_an_unserved_service_names_its_root_faults_and_is_restored(diamond: Network) -> None:
    """Node b stopped and link c--d cut: the service is unserved, its alarm filed under the
    node, the cut named too; repaired, it is served with a 60 s restoration time."""
    monitor = NetworkMonitor(diamond)
    working, backup = _route(diamond, "a", "b", "d"), _route(diamond, "a", "c", "d")
    counts = RequestCounts()
    counts.delivered("sae-a", "sae-d", 2, 512, 0.010)
    counts.delivered("sae-a", "sae-d", 2, 512, 0.030)
    counts.released("sae-a", "sae-d", 4, handed=True)
    routes = {SERVICE: ServiceRoutes("a", "d", working, (working, backup))}
    _report(monitor, 0.0, set(), set())
    assert monitor.report_services(0.0, counts.pairs, routes) == []
    view = monitor.services
    assert view.state(SERVICE) == "served"

    _report(monitor, 10.0, {"b"}, {"c--d"})
    counts.refused("sae-a", "sae-d", 4, "no route between the SAEs' nodes")
    routes = {SERVICE: ServiceRoutes("a", "d", None, (working, backup))}
    (event,) = monitor.report_services(10.0, counts.pairs, routes)
    assert (event.kind, event.alarm.rule, event.alarm.subject) == (
        "raised", "service-unserved", SERVICE)
    (record,) = view.records()
    assert record["state"] == "unserved" and record["route"] is None
    assert {(c["rule"], c["subject"]) for c in record["causes"]} == {
        ("node-down", "b"), ("qkd-link-down", "c--d")}
    assert record["requests_refused"] == 1 and record["requests"] == 3
    assert record["last_refusal"].startswith("no route")
    # the O&M view files the service's alarm under the stopped node
    alarms = {a["id"]: a for a in OmView(monitor.nms, monitor.alarms, view).active_alarms()}
    cause = alarms[event.alarm.id]["cause"]
    assert cause is not None and alarms[cause]["rule"] == "node-down"
    assert alarms[cause]["subject"] == "b"

    _report(monitor, 70.0, set(), set())
    routes = {SERVICE: ServiceRoutes("a", "d", working, (working, backup))}
    (event,) = monitor.report_services(70.0, counts.pairs, routes)
    assert event.kind == "cleared"
    (record,) = view.records()
    assert record["state"] == "served" and record["route"] == ["a", "b", "d"]
    assert record["causes"] == []
    qos = record["qos"]
    assert qos["restoration_s"] == 60.0 and qos["outages"] == 1
    assert qos["availability"] == pytest.approx(1 - 60 / 70)
    assert qos["kkdlr"] == pytest.approx(4 / 8)  # 4 keys refused of 8 asked
    assert qos["kkder"] == 0.0
    assert qos["kkrd_s"] == pytest.approx(0.020)
    assert qos["kkrdv_s"] == pytest.approx(0.0198)


def test_a_switch_to_the_backup_or_a_refusal_degrades_a_service(diamond: Network) -> None:
    """On its backup route, or refused since the last report, a routed service is degraded;
    neither raises its alarm."""
    monitor = NetworkMonitor(diamond)
    working, backup = _route(diamond, "a", "b", "d"), _route(diamond, "a", "c", "d")
    counts = RequestCounts()
    counts.delivered("sae-a", "sae-d", 1, 256, 0.01)
    _report(monitor, 0.0, set(), {"a--b"})
    on_backup = {SERVICE: ServiceRoutes("a", "d", backup, (working, backup))}
    assert monitor.report_services(0.0, counts.pairs, on_backup) == []
    assert monitor.services.state(SERVICE) == "degraded"
    on_working = {SERVICE: ServiceRoutes("a", "d", working, (working, backup))}
    _report(monitor, 1.0, set(), set())
    counts.refused("sae-a", "sae-d", 1, "not enough key")
    assert monitor.report_services(1.0, counts.pairs, on_working) == []
    assert monitor.services.state(SERVICE) == "degraded"
    _report(monitor, 2.0, set(), set())
    counts.delivered("sae-a", "sae-d", 1, 256, 0.01)
    monitor.report_services(2.0, counts.pairs, on_working)
    assert monitor.services.state(SERVICE) == "served"
    assert monitor.services.qos(SERVICE).throughput_bps == 256.0  # bits in the last second


def test_the_prometheus_families_name_their_y3807_parameter(diamond: Network) -> None:
    """Each QoS family of a service says which Y.3807 parameter it is; the state is one-hot;
    a parameter not measured yet (no key asked by ID) is NaN."""
    monitor = NetworkMonitor(diamond)
    counts = RequestCounts()
    counts.delivered("sae-a", "sae-d", 1, 256, 0.01)
    _report(monitor, 0.0, set(), set())
    monitor.report_services(0.0, counts.pairs,
                            {SERVICE: ServiceRoutes("a", "d", _route(diamond, "a", "b", "d"))})
    families = {f.name: f for f in text_string_to_metric_families(
        service_exposition(monitor.services).decode())}
    for name, clause in (("throughput_bits_per_second", "8.1 throughput"),
                         ("key_response_delay_seconds", "KKRD"),
                         ("key_response_delay_variation_seconds", "KKRDV"),
                         ("key_delivery_error_ratio", "KKDER"),
                         ("key_delivery_loss_ratio", "KKDLR"),
                         ("availability_ratio", "8.6 availability"),
                         ("restoration_seconds", "8.6.1 service restoration time")):
        family = families[f"qkdnet_service_{name}"]
        assert "ITU-T Y.3807" in family.documentation and clause in family.documentation
        assert family.samples[0].labels == {"service": SERVICE, "master": "sae-a",
                                            "slave": "sae-d"}
    assert math.isnan(families["qkdnet_service_key_delivery_error_ratio"].samples[0].value)
    state = {s.labels["state"]: s.value for s in families["qkdnet_service_state"].samples}
    assert state == {"served": 1.0, "degraded": 0.0, "unserved": 0.0}
    (bits,) = families["qkdnet_service_key_delivered_bits"].samples
    assert bits.name.endswith("_total") and bits.value == 256.0


def test_a_twin_demands_qos_comes_from_its_outages_and_key_served() -> None:
    """Over a 100 s run with outages of 10 s and 20 s, a demand served 3/4 of its key has
    KKDLR 0.25, availability 0.7 and restoration times 20 s (last) and 15 s (mean); an
    outage still open at the end is no restoration."""
    timeline = outages([(10.0, 20.0), (50.0, 70.0)])
    qos = twin_qos(4000.0, 3000.0, timeline, 0.0, 100.0)
    assert qos.kkdlr == 0.25 and qos.throughput_bps == 30.0
    assert qos.availability == pytest.approx(0.7)
    assert (qos.restoration_s, qos.mean_restoration_s, qos.outages) == (20.0, 15.0, 2)
    assert math.isnan(qos.kkrd_s) and math.isnan(qos.kkder)
    still = twin_qos(4000.0, 3000.0, outages([(10.0, 20.0), (90.0, 100.0)]), 0.0, 100.0)
    assert still.restoration_s == 10.0 and still.outages == 2


def test_the_om_view_says_whether_services_are_reported(diamond: Network) -> None:
    """Without a service view (a replay) the O&M view reports none and says so."""
    monitor = NetworkMonitor(diamond)
    assert OmView(monitor.nms, monitor.alarms).services() == {
        "t": None, "reported": False, "services": []}
    with_view = OmView(monitor.nms, monitor.alarms, monitor.services).services()
    assert with_view["reported"] is True and with_view["services"] == []
