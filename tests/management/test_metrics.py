"""Prometheus exposition of the NMS: parses, one sample per element, the ingested values;
link labels, active alarms by severity and the KMEs' answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from qkdnet.management.alarms import AlarmEngine
from qkdnet.management.kme_counts import KmeCounts
from qkdnet.management.metrics import exposition, link_domains, registry_for
from qkdnet.management.nms import Nms
from qkdnet.management.telemetry import KMLinkTelemetry, LinkTelemetry, NodeHealth
from qkdnet.topology.cn_qcn import build_cn_qcn
from qkdnet.topology.model import Network


@pytest.fixture(scope="module")
def net() -> Network:
    return build_cn_qcn()


def _families(nms: Nms) -> dict[str, list[tuple[dict[str, str], float]]]:
    text = exposition(nms).decode()
    return {f.name: [(s.labels, s.value) for s in f.samples]
            for f in text_string_to_metric_families(text)}


def test_one_skr_sample_per_qkd_link_with_the_ingested_values(net: Network) -> None:
    """All 1,066 CN-QCN QKD-links in one batch: one SKR sample each, value and region."""
    assert len(net.qkd_links) == 1066
    ids = tuple(net.link)
    skr = np.linspace(100.0, 50_000.0, len(ids))
    qber = np.linspace(0.005, 0.05, len(ids))
    up = np.arange(len(ids)) % 10 != 0
    nms = Nms(net, history_points=2)
    nms.ingest(LinkTelemetry(60.0, ids, skr, qber, up, np.zeros(len(ids), bool)))
    fams = _families(nms)
    samples = fams["qkdnet_link_skr_bits_per_second"]
    assert len(samples) == len(ids)
    got = {labels["link"]: value for labels, value in samples}
    assert len(got) == len(ids)
    assert got == {i: pytest.approx(v) for i, v in zip(ids, skr.tolist(), strict=True)}
    assert all(labels["region"] == net.node[net.link[labels["link"]].a].region
               for labels, _ in samples)
    qbers = {labels["link"]: value for labels, value in fams["qkdnet_link_qber_ratio"]}
    assert qbers[ids[7]] == pytest.approx(qber[7])
    ups = {labels["link"]: value for labels, value in fams["qkdnet_link_up"]}
    assert ups[ids[0]] == 0.0 and ups[ids[1]] == 1.0
    # nothing but QKD-links reported, so the KM-link and node families are empty
    assert fams["qkdnet_kmlink_key_bits"] == [] and fams["qkdnet_node_ok"] == []


def test_km_links_and_nodes_are_exposed(net: Network) -> None:
    """KM-link key amount, refill rate and state; node health; NaN QBER stays NaN."""
    nms = Nms(net, history_points=2)
    km, node, link = net.km_links[0].id, net.nodes[0].id, net.qkd_links[0].id
    nms.ingest(KMLinkTelemetry(1.0, (km,), [2048.0], [300.0], [False]))
    nms.ingest(NodeHealth(1.0, (node,), [True]))
    nms.ingest(LinkTelemetry(1.0, (link,), [0.0], [math.nan], [False], [True]))
    fams = _families(nms)
    assert fams["qkdnet_kmlink_key_bits"] == [
        ({"km_link": km, "region": net.node[net.km_link[km].a].region,
          "kind": str(net.km_link[km].kind)}, 2048.0)]
    assert fams["qkdnet_kmlink_refill_bits_per_second"][0][1] == 300.0
    assert fams["qkdnet_kmlink_up"][0][1] == 0.0
    assert fams["qkdnet_node_ok"] == [({"node": node, "region": net.node[node].region}, 1.0)]
    assert math.isnan(fams["qkdnet_link_qber_ratio"][0][1])
    assert fams["qkdnet_link_detector_current_alarm"][0][1] == 1.0


def test_exposition_follows_the_nms_and_leaves_the_global_registry_alone(net: Network) -> None:
    """The collector reads the NMS at scrape time; each NMS gets its own registry."""
    before = set(REGISTRY._names_to_collectors)
    nms = Nms(net, history_points=2)
    registry = registry_for(nms)
    link = net.qkd_links[0].id
    nms.ingest(LinkTelemetry(1.0, (link,), [10.0], [0.01], [True], [False]))
    labels = {"link": link, "region": net.node[net.link[link].a].region,
              "device_type": net.link[link].device_type,
              "domain": link_domains(net)[link]}
    assert registry.get_sample_value("qkdnet_link_skr_bits_per_second", labels) == 10.0
    nms.ingest(LinkTelemetry(2.0, (link,), [20.0], [0.01], [True], [False]))
    assert registry.get_sample_value("qkdnet_link_skr_bits_per_second", labels) == 20.0
    assert set(REGISTRY._names_to_collectors) == before


def test_key_discarded_for_full_pools_is_a_counter_per_km_link(net: Network) -> None:
    """The driver's discarded bits per KM-link come out as a counter with the link's region,
    0 included; without them there is no such family."""
    nms = Nms(net, history_points=2)
    full, empty = net.km_links[0].id, net.km_links[1].id
    nms.ingest(KMLinkTelemetry(1.0, (full,), [2048.0], [300.0], [True]))
    text = exposition(nms, None, {full: 8192, empty: 0}).decode()
    [family] = [f for f in text_string_to_metric_families(text)
                if f.name == "qkdnet_kmlink_discarded_bits"]
    assert family.type == "counter"
    got = {s.labels["km_link"]: (s.value, s.labels["region"]) for s in family.samples
           if s.name.endswith("_total")}
    assert got[full] == (8192.0, net.node[net.km_link[full].a].region)
    assert got[empty][0] == 0.0
    assert "qkdnet_kmlink_discarded_bits" not in exposition(nms).decode()


def test_group_commit_rounds_and_commits_are_two_counters(net: Network) -> None:
    """The driver's rounds and store commits, read at scrape time; without them, none."""
    nms = Nms(net, history_points=2)
    counts = [3, 12]
    text = exposition(nms, None, None, lambda: (counts[0], counts[1])).decode()
    got = {f.name: (f.type, [s.value for s in f.samples if s.name.endswith("_total")])
           for f in text_string_to_metric_families(text) if f.name.startswith("qkdnet_key_")}
    assert got == {"qkdnet_key_store_commit_rounds": ("counter", [3.0]),
                   "qkdnet_key_store_commits": ("counter", [12.0])}
    counts[:] = [4, 20]
    assert "qkdnet_key_store_commits_total 20.0" in exposition(
        nms, None, None, lambda: (counts[0], counts[1])).decode()
    assert "qkdnet_key_store" not in exposition(nms).decode()


def test_link_series_carry_device_type_and_domain(net: Network) -> None:
    """Every QKD-link sample names its devices' type and the domain holding both ends: a
    Beijing metro link its metro domain, a backbone link the backbone."""
    ids = tuple(net.link)
    nms = Nms(net, history_points=2)
    nms.ingest(LinkTelemetry(1.0, ids, np.ones(len(ids)), np.zeros(len(ids)),
                             np.ones(len(ids), bool), np.zeros(len(ids), bool)))
    samples = _families(nms)["qkdnet_link_up"]
    labels = {s["link"]: s for s, _ in samples}
    assert all(labels[i]["device_type"] == net.link[i].device_type for i in ids)
    domains = link_domains(net)
    for link, domain in domains.items():
        assert labels[link]["domain"] == domain
        if domain:
            lk = net.link[link]
            assert {lk.a, lk.b} <= net.domain[domain].nodes
    assert {"backbone", "metro-beijing"} <= set(domains.values())


def test_active_alarms_are_a_gauge_per_severity(net: Network) -> None:
    """With the alarm engine given, one sample per severity, 0 included: a link down is
    one critical alarm; cleared, the critical sample drops to 0 (it does not vanish)."""
    nms = Nms(net, history_points=2)
    alarms = AlarmEngine()
    link = net.qkd_links[0].id
    alarms.observe_batch(LinkTelemetry(1.0, (link,), [0.0], [0.0], [False], [False]))

    def active() -> dict[str, float]:
        text = exposition(nms, alarms=alarms).decode()
        return {s.labels["severity"]: s.value for f in text_string_to_metric_families(text)
                if f.name == "qkdnet_alarms_active" for s in f.samples}

    assert active() == {"critical": 1.0, "major": 0.0, "minor": 0.0, "warning": 0.0}
    alarms.observe_batch(LinkTelemetry(2.0, (link,), [5000.0], [0.01], [True], [False]))
    assert active()["critical"] == 0.0
    assert "qkdnet_alarms_active" not in exposition(nms).decode()


def test_kme_counts_become_counters_and_a_cumulative_histogram(net: Network) -> None:
    """The KME families are built from the plain counts at scrape time: requests by node,
    endpoint, SAE and code; a histogram whose buckets accumulate to its count; refusals by
    cause."""
    counts = KmeCounts()
    for seconds in (0.0003, 0.002, 0.002, 0.7):
        counts.record("a", "enc_keys", "sae-a", 200, seconds)
    counts.record("c", "dec_keys", "sae-c", 503, 0.01)
    counts.refuse("c", "dec_keys", "no route between the SAEs' nodes")
    registry = registry_for(Nms(net, history_points=2), kme=counts)
    get = registry.get_sample_value
    assert get("qkdnet_kme_requests_total", {"node": "a", "endpoint": "enc_keys",
                                             "sae": "sae-a", "code": "200"}) == 4.0
    assert get("qkdnet_kme_requests_total", {"node": "c", "endpoint": "dec_keys",
                                             "sae": "sae-c", "code": "503"}) == 1.0
    where = {"node": "a", "endpoint": "enc_keys"}
    assert get("qkdnet_kme_request_duration_seconds_bucket", {**where, "le": "0.0005"}) == 1.0
    assert get("qkdnet_kme_request_duration_seconds_bucket", {**where, "le": "0.0025"}) == 3.0
    assert get("qkdnet_kme_request_duration_seconds_bucket", {**where, "le": "0.5"}) == 3.0
    assert get("qkdnet_kme_request_duration_seconds_bucket", {**where, "le": "+Inf"}) == 4.0
    assert get("qkdnet_kme_request_duration_seconds_count", where) == 4.0
    assert get("qkdnet_kme_request_duration_seconds_sum", where) == pytest.approx(0.7043)
    assert get("qkdnet_kme_refusals_total", {"node": "c", "endpoint": "dec_keys",
                                             "cause": "no_route"}) == 1.0
