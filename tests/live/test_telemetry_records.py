"""The KME counts and SAE pairs in a node's telemetry record: a round trip, a record
without them (earlier versions) still taken, each malformed field named (400) and a node
speaking for a pair or route not its own refused (403); the NMS joining the nodes'
latest counts, a restarted node's counts a drop, never added to the old."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from node_deployment import SQUARE

from qkdnet.files.networks import load_network
from qkdnet.keys.etsi014 import ApiError
from qkdnet.keys.route import Route
from qkdnet.live.nms_service import NmsState
from qkdnet.live.telemetry_records import NodeRecord, ServiceEnd, check_ends, parse_record
from qkdnet.management.kme_counts import KmeCounts
from qkdnet.management.monitor import NetworkMonitor
from qkdnet.management.services import PairCounts, ServiceRoutes
from qkdnet.topology.model import Network


@pytest.fixture
def square(tmp_path: Path) -> Network:
    (tmp_path / "square.yaml").write_text(SQUARE)
    return load_network(tmp_path / "square.yaml")


def _record(node: str, t: float, *, requests: int = 0, asked: int = 0,
            route: bool = False) -> NodeRecord:
    """``node``'s record (no links) with its KME's counts and the pair sae-a->sae-d's side:
    ``requests`` served Get key of 256 bits at the master's, ``asked`` keys by key_ID at
    the slave's; with ``route``, the pair's route a-b-c-d."""
    kme = KmeCounts()
    for _ in range(requests):
        kme.record(node, "enc_keys", "sae-a", 200, 0.003)
    kme.refuse(node, "enc_keys", "no route from a to d")
    pair = PairCounts()
    pair.requests = pair.keys_delivered = requests
    pair.bits_delivered = 256 * requests
    pair.delays.extend([0.003] * requests)
    pair.keys_asked_by_id = asked
    routes = ServiceRoutes("a", "d", Route(("a", "b", "c", "d"),
                                           ("km:a~b", "km:b~c", "km:c~d"))) if route else None
    return NodeRecord(node, t, True, True, False, (), (), kme,
                      (ServiceEnd("sae-a", "sae-d", pair, routes),))


def test_counts_and_routes_survive_the_trip(square: Network) -> None:
    """document() then parse_record() gives the same counts, delays and route."""
    sent = _record("a", 1000.0, requests=3, route=True)
    got = parse_record(copy.deepcopy(sent.document()), square)
    assert dict(got.kme.calls) == dict(sent.kme.calls)
    assert dict(got.kme.refused) == {("a", "enc_keys", "no_route"): 1}
    assert got.kme.latency["a", "enc_keys"].buckets == sent.kme.latency["a", "enc_keys"].buckets
    (end,) = got.services
    assert (end.counts.requests, end.counts.bits_delivered, list(end.counts.delays)) == \
        (3, 768, [0.003] * 3)
    assert end.routes is not None and end.routes.active is not None
    assert end.routes.active.nodes == ("a", "b", "c", "d") and end.routes.source == "a"
    check_ends(got, square)


def test_a_record_without_counts_is_taken_as_counting_nothing(square: Network) -> None:
    """A record of an earlier version (no kme, no services) parses, empty."""
    got = parse_record({"node": "a", "t": 1.0, "ok": True, "links": [], "km_links": []},
                       square)
    assert not got.kme.calls and got.services == ()
    assert "kme" not in got.document() and "services" not in got.document()


def _set(document: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    at: Any = document
    for key in path[:-1]:
        at = at[key]
    at[path[-1]] = value
    return document


@pytest.mark.parametrize(("path", "value", "field"), [
    (("kme", "calls", 0, "code"), 42, "kme.calls[0].code: must be an HTTP status code"),
    (("kme", "calls", 0, "count"), 1.5, "kme.calls[0].count: must be an integer >= 0"),
    (("kme", "calls", 0, "endpoint"), "keys", "kme.calls[0].endpoint: must be one of"),
    (("kme", "latency", 0, "buckets"), [1, 2], "kme.latency[0].buckets: must be 15 counts"),
    (("kme", "refusals", 0, "cause"), "bad luck", "kme.refusals[0].cause: must be one of"),
    (("kme", "extra"), [], "kme.extra: unknown field"),
    (("services", 0, "master"), "sae-x", "services[0].master: unknown SAE 'sae-x'"),
    (("services", 0, "requests"), -1, "services[0].requests: must be an integer >= 0"),
    (("services", 0, "delays_s"), [0.1] * 257, "services[0].delays_s: at most 256"),
    (("services", 0, "route", "km_links", 1), "km:c~d",
     "services[0].route.km_links[1]: 'km:c~d' does not join 'b' and 'c'"),
    (("services", 0, "route", "nodes"), ["a", "b"],
     "services[0].route: must have one KM-link fewer than nodes"),
])
def test_a_malformed_count_or_route_is_refused_naming_the_field(
        square: Network, path: tuple[Any, ...], value: Any, field: str) -> None:
    """400, the message starting with the field's path in the batch."""
    document = _set(_record("a", 1.0, requests=1, route=True).document(), path, value)
    with pytest.raises(ApiError) as caught:
        parse_record(document, square, "records[2]")
    assert caught.value.status == 400
    assert caught.value.message.startswith(f"records[2].{field}"), caught.value.message


def test_a_node_speaks_only_for_its_own_pairs_and_the_master_for_routes(
        square: Network) -> None:
    """403 for b counting sae-a->sae-d, and for d (the slave's) reporting its route."""
    for record, start in ((_record("b", 1.0, requests=1), "services[0]: node 'b'"),
                          (_record("d", 1.0, asked=1, route=True), "services[0].route")):
        with pytest.raises(ApiError) as caught:
            check_ends(parse_record(record.document(), square), square)
        assert caught.value.status == 403
        assert caught.value.message.startswith(start), caught.value.message


def test_the_nms_joins_the_latest_counts_and_a_restart_drops_them(square: Network) -> None:
    """Master's and slave's sides joined into one service on its route; a restarted master
    (fewer requests) replaces, never adds to, its old counts."""
    clock = [1000.0]
    monitor = NetworkMonitor(square)
    state = NmsState(monitor, clock=lambda: clock[0])
    state.take([_record("a", 1000.0, requests=5, route=True), _record("d", 1000.0, asked=5)])
    state.report()
    (service,) = monitor.services.records()
    assert (service["requests"], service["route"]) == (5, ["a", "b", "c", "d"])
    assert service["state"] == "served"
    assert state.kme_counts().calls["a", "enc_keys", "sae-a", 200] == 5
    clock[0] = 1001.0
    state.take([_record("a", 1001.0, requests=2, route=True)])
    state.report()
    (service,) = monitor.services.records()
    assert service["requests"] == 2 and service["key_delivered_bits"] == 512
    assert state.kme_counts().calls["a", "enc_keys", "sae-a", 200] == 2
