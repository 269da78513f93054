"""The management layer's one entry point: records go through every region's EMS to the
NMS and through the alarm rules, which read the records' own fields; a replay brings the
recorded alarms instead."""

from __future__ import annotations

import numpy as np
import pytest

from qkdnet.errors import ParameterError
from qkdnet.management.alarms import DEFAULT_RULES, AlarmRule, Severity
from qkdnet.management.monitor import NetworkMonitor
from qkdnet.management.telemetry import KMLinkTelemetry, LinkTelemetry, NodeHealth
from qkdnet.topology.cn_qcn import build_cn_qcn
from qkdnet.topology.model import KMLinkKind, Network


@pytest.fixture(scope="module")
def net() -> Network:
    return build_cn_qcn()


def _links(net: Network, t: float, down: str = "", skr: float = 5e4) -> LinkTelemetry:
    ids = tuple(net.link)
    up = np.array([i != down for i in ids])
    return LinkTelemetry(t, ids, np.where(up, skr, 0.0), np.where(up, 0.02, np.nan), up,
                         np.zeros(len(ids), bool))


def _kms(net: Network, t: float, key_bits: float = 1e6) -> KMLinkTelemetry:
    n = len(net.km_links)
    return KMLinkTelemetry(t, tuple(net.km_link), np.full(n, key_bits), np.full(n, 100.0),
                           np.ones(n, bool))


def _nodes(net: Network, t: float, stopped: str = "") -> NodeHealth:
    return NodeHealth(t, tuple(net.node), np.array([i != stopped for i in net.node]))


def test_a_report_reaches_the_nms_through_every_region(net: Network) -> None:
    """Every record of a report is in the NMS afterwards, whichever region it belongs to."""
    monitor = NetworkMonitor(net)
    monitor.report(_links(net, 10.0), _kms(net, 10.0), _nodes(net, 10.0))
    nms = monitor.nms
    assert nms.now == 10.0
    assert nms.records == len(net.qkd_links) + len(net.km_links) + len(net.nodes)
    assert set(nms.latest("links").regions) == {net.node[lk.a].region for lk in net.qkd_links}
    assert len(nms.latest("nodes").ids) == len(net.nodes)


def test_a_down_link_raises_its_down_alarm_but_no_low_rate_alarm(net: Network) -> None:
    """A link that is down measures nothing: after the SKR hold-off only link-down stands."""
    monitor = NetworkMonitor(net)
    cut = net.qkd_links[7].id
    events = monitor.report(_links(net, 0.0, down=cut))
    assert [(e.kind, e.alarm.rule, e.alarm.subject) for e in events] == [
        ("raised", "qkd-link-down", cut)]
    monitor.report(_links(net, 600.0, down=cut))
    assert {(a.rule, a.subject) for a in monitor.alarms.active()} == {("qkd-link-down", cut)}


def test_the_rules_read_every_kind_of_record(net: Network) -> None:
    """A low SKR, a KM-link short of key and a stopped node each raise their rule's alarm."""
    monitor = NetworkMonitor(net)
    stopped = net.nodes[3].id
    for t in (0.0, 300.0):
        monitor.report(_links(net, t, skr=10.0), _kms(net, t, key_bits=100.0),
                       _nodes(net, t, stopped=stopped))
    rules = {a.rule for a in monitor.alarms.active()}
    assert {"skr-low", "key-reserve-low", "node-down"} <= rules
    assert ("node-down", stopped) in {(a.rule, a.subject) for a in monitor.alarms.active()}


def test_a_satellite_km_link_out_of_key_between_passes_raises_no_reserve_alarm(
        net: Network) -> None:
    """Every KM-link short of key for 5 min: the fibre ones raise key-reserve-low, the
    satellite ones (whose key comes with the passes) do not; down, they still raise
    km-link-down."""
    monitor = NetworkMonitor(net)
    satellite = {k.id for k in net.km_links if k.kind is KMLinkKind.SATELLITE}
    assert len(satellite) == 15
    for t in (0.0, 300.0):
        monitor.report(_links(net, t), _kms(net, t, key_bits=0.0))
    low = {a.subject for a in monitor.alarms.active() if a.rule == "key-reserve-low"}
    assert low == {k.id for k in net.km_links} - satellite
    n = len(net.km_links)
    monitor.report(_links(net, 301.0), KMLinkTelemetry(
        301.0, tuple(net.km_link), np.zeros(n), np.zeros(n), np.zeros(n, bool)))
    down = {a.subject for a in monitor.alarms.active() if a.rule == "km-link-down"}
    assert satellite <= down


def test_a_rule_must_watch_a_field_of_its_record() -> None:
    """A rule whose metric no record carries could never fire: it is refused, naming it."""
    bad = AlarmRule("temp-high", "node", "temperature_c", ">", 70.0, 0.0, Severity.MAJOR,
                    "too hot")
    with pytest.raises(ParameterError, match=r"temperature_c.*ok"):
        NetworkMonitor(build_cn_qcn(), rules=(*DEFAULT_RULES, bad))


def test_a_replay_stores_the_records_and_brings_the_recorded_alarms(net: Network) -> None:
    """Replayed into a second monitor, a run's alarm events give the same alarms, even
    where the replayed samples alone would raise none."""
    run = NetworkMonitor(net)
    cut = net.qkd_links[2].id
    events = [e for t, down in ((0.0, cut), (300.0, ""))
              for e in run.report(_links(net, t, down=down))]
    replay = NetworkMonitor(net)
    got = replay.replay(_links(net, 300.0), events)  # a healthy sample
    assert [(e.kind, e.alarm.id) for e in got] == [(e.kind, e.alarm.id) for e in events]
    assert replay.alarms.history() == run.alarms.history()
    assert replay.nms.link_status(cut) is not None
