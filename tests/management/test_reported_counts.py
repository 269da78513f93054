"""Joining what node processes report: KME shares and SAE pairs' sides added once each, a
counter reset seen as a drop (no negative throughput), routes remembered as planned."""

from __future__ import annotations

import math
from pathlib import Path

from qkdnet.files.networks import load_network
from qkdnet.keys.route import Route
from qkdnet.management.kme_counts import KmeCounts
from qkdnet.management.monitor import NetworkMonitor
from qkdnet.management.reported_counts import (
    RouteMemory,
    kme_share,
    merge_kme,
    merge_pairs,
    pair_share,
)
from qkdnet.management.services import RequestCounts, ServiceRoutes

PAIR = """\
qkdnet_scenario: 1
name: pair
nodes:
  - {id: a, kind: backbone_access, lat: 30, lon: 110}
  - {id: b, kind: backbone_access, lat: 30.3, lon: 110.3}
qkd_links:
  - {a: a, b: b, length_km: 40, device_type: I}
saes:
  - {id: s1, node: a}
  - {id: s2, node: b}
"""


def test_a_process_counts_split_by_node_and_join_back_unchanged() -> None:
    """Two nodes' KME shares of one process's counts join to the same counts."""
    counts = KmeCounts()
    counts.record("a", "enc_keys", "sae-a", 200, 0.002)
    counts.record("a", "enc_keys", "sae-a", 503, 0.5)
    counts.refuse("a", "enc_keys", "no route from a to d")
    counts.record("d", "dec_keys", "sae-d", 200, 0.001)
    a, d = kme_share(counts, "a"), kme_share(counts, "d")
    assert set(a.calls) == {("a", "enc_keys", "sae-a", 200), ("a", "enc_keys", "sae-a", 503)}
    assert dict(d.refused) == {}
    joined = merge_kme([a, d])
    assert dict(joined.calls) == dict(counts.calls)
    assert dict(joined.refused) == {("a", "enc_keys", "no_route"): 1}
    assert joined.latency["a", "enc_keys"].buckets == counts.latency["a", "enc_keys"].buckets
    assert math.isclose(joined.latency["a", "enc_keys"].sum_s, 0.502)


def test_a_pairs_sides_are_counted_at_one_node_each() -> None:
    """The master's node reports Get key, the slave's Get key with key IDs; joined, each
    count appears once."""
    requests = RequestCounts()
    requests.delivered("sae-a", "sae-d", 2, 512, 0.004)
    requests.refused("sae-a", "sae-d", 1, "no route")
    requests.released("sae-a", "sae-d", 2, handed=True)
    pair = requests.pairs["sae-a", "sae-d"]
    master, slave = pair_share(pair, True, False), pair_share(pair, False, True)
    assert (master.requests, master.keys_asked_by_id) == (2, 0)
    assert (slave.requests, slave.keys_asked_by_id) == (0, 2)
    joined = merge_pairs([{("sae-a", "sae-d"): master}, {("sae-a", "sae-d"): slave}])
    got = joined["sae-a", "sae-d"]
    assert (got.requests, got.refused, got.keys_delivered, got.keys_lost,
            got.bits_delivered, got.keys_asked_by_id) == (2, 1, 2, 1, 512, 2)
    assert list(got.delays) == [0.004] and got.last_refusal == "no route"


def test_a_reset_is_a_drop_and_the_throughput_stays_non_negative(tmp_path: Path) -> None:
    """After a node's counts start again from zero the service's throughput is what was
    delivered since, never negative."""
    (tmp_path / "pair.yaml").write_text(PAIR)
    network = load_network(tmp_path / "pair.yaml")
    view = NetworkMonitor(network).services
    km = network.km_links[0].id
    routes = {"s1->s2": ServiceRoutes("a", "b", Route(("a", "b"), (km,)))}
    before = RequestCounts()
    for _ in range(4):
        before.delivered("s1", "s2", 1, 1000, 0.001)
    view.report(10.0, before.pairs, routes)
    after = RequestCounts()
    after.delivered("s1", "s2", 1, 1000, 0.001)
    view.report(11.0, after.pairs, routes)
    record = view.records()[0]
    assert record["key_delivered_bits"] == 1000  # the drop, as Prometheus reads a reset
    assert record["qos"]["throughput_bps"] == 1000.0


def test_route_memory_keeps_the_working_route_and_the_last_other_one() -> None:
    """First route given is the working one; a reroute is planned too; no route keeps
    both for the root-cause search."""
    working = Route(("a", "b", "c"), ("km:a~b", "km:b~c"))
    other = Route(("a", "c"), ("km:a~c",))
    memory = RouteMemory()
    assert not memory.known("a->c") and memory.planned("a->c") == ()
    memory.given("a->c", working)
    memory.given("a->c", other)
    memory.given("a->c", None)
    assert memory.known("a->c") and memory.active("a->c") is None
    assert memory.planned("a->c") == (working, other)
