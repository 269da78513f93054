"""The O&M view model: the map's topology and link kinds, the availability table, the
state events and alarms with their root causes, link histories and acknowledgements, as
JSON-ready data."""

from __future__ import annotations

import json

import numpy as np
import pytest

from qkdnet.errors import ParameterError
from qkdnet.management.monitor import NetworkMonitor
from qkdnet.management.om_view import OmView, availability_report, link_kind, topology
from qkdnet.management.telemetry import LinkTelemetry, NodeHealth
from qkdnet.topology.cn_qcn import build_cn_qcn
from qkdnet.topology.model import Network, NodeKind

BACKBONE = {NodeKind.BACKBONE_ACCESS, NodeKind.BACKBONE_RELAY}


@pytest.fixture(scope="module")
def net() -> Network:
    return build_cn_qcn()


def _report(monitor: NetworkMonitor, t: float, down: tuple[str, ...] = (),
            stopped: tuple[str, ...] = ()) -> None:
    net = monitor.network
    ids = tuple(net.link)
    up = np.array([i not in down for i in ids])
    monitor.report(LinkTelemetry(t, ids, np.where(up, 5e4, 0.0), np.where(up, 0.02, np.nan),
                                 up, np.zeros(len(ids), bool)),
                   nodes=NodeHealth(t, tuple(net.node),
                                    np.array([i not in stopped for i in net.node])))


def test_a_link_is_of_the_kind_of_its_ends(net: Network) -> None:
    """User access links are ``user``; links between backbone nodes ``backbone``."""
    for lk in net.qkd_links:
        kinds = {net.node[lk.a].kind, net.node[lk.b].kind}
        kind = link_kind(net, lk.id)
        assert (kind == "user") == (NodeKind.USER in kinds)
        if kinds <= BACKBONE:
            assert kind == "backbone"
    assert {"user", "metro", "backbone"} <= {link_kind(net, i) for i in net.link}


def test_the_topology_has_every_node_and_link_with_its_kind(net: Network) -> None:
    """The map gets each node with coordinates and each QKD-link with its kind."""
    topo = topology(net)
    assert [n["id"] for n in topo["nodes"]] == list(net.node)
    assert all(isinstance(n["lat"], float) for n in topo["nodes"])
    assert [(lk["id"], lk["kind"]) for lk in topo["links"]] == [
        (i, link_kind(net, i)) for i in net.link]
    monitor = NetworkMonitor(net)
    assert OmView(monitor.nms, monitor.alarms).topology(True)["fault_injection"] is True


def test_availability_counts_the_outages_the_nms_saw(net: Network) -> None:
    """A link down 300 s of 1000 s is 70 % available; one down now is listed as such."""
    monitor = NetworkMonitor(net)
    assert availability_report(monitor.nms)["summary"]["availability"] is None
    first, second = net.qkd_links[0].id, net.qkd_links[1].id
    _report(monitor, 0.0)
    _report(monitor, 100.0, down=(first,))
    _report(monitor, 400.0)
    _report(monitor, 1000.0, down=(second,))
    table = availability_report(monitor.nms)
    rows = {r["link"]: r for r in table["links"]}
    assert set(rows) == {first, second}
    assert rows[first]["availability"] == pytest.approx(0.7)
    assert rows[first]["outage_hours"] == pytest.approx(300 / 3600)
    assert rows[second]["down_now"] and rows[second]["outages"] == 1
    n = len(net.qkd_links)
    assert table["summary"]["availability"] == pytest.approx(1 - 300 / (1000 * n))


def test_a_stopped_nodes_alarm_is_the_cause_of_its_links_alarms(net: Network) -> None:
    """The links of a stopped node report down; their alarms name the node's as cause, and
    the state event lists the node as down, as JSON without NaN."""
    monitor = NetworkMonitor(net)
    node = net.qkd_links[0].a
    links = tuple(lk.id for lk in net.qkd_links if node in lk.ends)
    _report(monitor, 0.0, down=links, stopped=(node,))
    view = OmView(monitor.nms, monitor.alarms)
    active = {a["id"]: a for a in view.active_alarms()}
    [root] = [a for a in active.values() if a["rule"] == "node-down"]
    assert root["cause"] is None and root["subject"] == node
    downs = [a for a in active.values() if a["rule"] == "qkd-link-down"]
    assert {a["subject"] for a in downs} == set(links)
    assert all(a["cause"] == root["id"] for a in downs)
    event = json.loads(json.dumps(view.state_event(), allow_nan=False))
    assert event["nodes_down"] == [node] and event["t"] == 0.0
    assert all(not event["links"][i]["up"] for i in links)
    assert len(view.alarm_list()["history"]) == len(active)


def test_a_links_history_and_an_acknowledgement(net: Network) -> None:
    """A link's series come with its active alarms; an unknown link is an error; an
    acknowledgement is never dated before the NMS's latest sample."""
    monitor = NetworkMonitor(net)
    cut = net.qkd_links[4].id
    _report(monitor, 50.0, down=(cut,))
    view = OmView(monitor.nms, monitor.alarms)
    history = view.history(cut)
    assert history["t"] == [50.0] and [a["rule"] for a in history["alarms"]] == [
        "qkd-link-down"]
    with pytest.raises(ParameterError, match="x--y"):
        view.history("x--y")
    acked = view.acknowledge(history["alarms"][0]["id"], 10.0, "ops")
    assert acked["acknowledged_at"] == 50.0 and acked["acknowledged_by"] == "ops"
