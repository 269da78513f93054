"""The control layer: key-aware routing per domain, stitching across domains, protection."""

from __future__ import annotations

import asyncio
from pathlib import Path as FilePath
from typing import Any

import pytest

from qkdnet.control.controller import Controller, Demand
from qkdnet.control.cost import key_aware_cost
from qkdnet.control.hierarchy import controllers_for
from qkdnet.control.level2 import Level2Controller, Protected
from qkdnet.errors import NoRoute
from qkdnet.keys.link_state import KMLinkState
from qkdnet.keys.route import Router
from qkdnet.live.keynet import KeyNetwork, served_nodes
from qkdnet.topology.cn_qcn import build_cn_qcn
from qkdnet.topology.model import DomainKind, Network, NodeKind


@pytest.fixture(scope="module")
def net() -> Network:
    return build_cn_qcn()


def _disjoint(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    return not set(a) & set(b)


def test_cost_grows_as_key_runs_short_and_excludes_what_cannot_serve() -> None:
    """Plenty of key costs about one hop; scarce key costs more; too little or down, none."""
    plenty = key_aware_cost(KMLinkState("k", 1e9), 512)
    scarce = key_aware_cost(KMLinkState("k", 600), 512)
    assert plenty is not None and scarce is not None and 1.0 <= plenty < scarce
    assert key_aware_cost(KMLinkState("k", 100), 512) is None
    assert key_aware_cost(KMLinkState("k", 1e9, up=False), 512) is None
    assert key_aware_cost(KMLinkState("k", 100, rate_bps=1e4), 512) is not None  # refills


def test_working_and_backup_paths_are_edge_disjoint(net: Network) -> None:
    """Beijing-Wuhan: the working path and its backup share no KM-link; one runs along the
    chain through Zhengzhou, the other round the ring through Jinan and Hefei."""
    routes = controllers_for(net).protected("beijing", "wuhan", 512)
    assert routes is not None and routes.backup is not None
    assert _disjoint(routes.working.km_links, routes.backup.km_links)
    both = {*routes.working.nodes, *routes.backup.nodes}
    assert {"zhengzhou", "jinan", "hefei"} <= both


def test_a_chain_has_no_backup(net: Network) -> None:
    """Harbin-Beijing is a single chain: a working path, no backup."""
    routes = controllers_for(net).protected("harbin", "beijing", 512)
    assert routes is not None and routes.backup is None


def test_key_aware_cost_avoids_an_empty_km_link(net: Network) -> None:
    """Empty a KM-link of the working path: the new route goes round it."""
    l1 = controllers_for(net)
    before = l1.route("beijing", "wuhan", 512)
    assert before is not None
    empty = before.km_links[len(before.km_links) // 2]
    l1.update(KMLinkState(empty, key_bits=0.0))
    after = l1.route("beijing", "wuhan", 512)
    assert after is not None and empty not in after.km_links


def test_level2_stays_inside_its_domain(net: Network) -> None:
    """A Level-2 controller only uses KM-links with both ends in its domain."""
    l2 = Level2Controller(net, net.domain["backbone"])
    routes = l2.protected("harbin", "shenzhen", 512)
    assert routes is not None
    assert set(routes.working.nodes) <= net.domain["backbone"].nodes
    assert len(routes.working.km_links) == 64


def test_level1_stitches_a_metro_the_backbone_and_another_metro(net: Network) -> None:
    """User in the Beijing metro to user in the Shanghai metro: every hop lies inside one
    domain, and the route passes through metro, backbone or BSBN, and metro domains."""
    path = controllers_for(net).route("beijing-m1-u1", "shanghai-m1-u1", 512)
    assert path is not None
    assert path.nodes[0] == "beijing-m1-u1" and path.nodes[-1] == "shanghai-m1-u1"
    domains_used: list[str | None] = []
    for km in path.km_links:
        link = net.km_link[km]
        holders: list[str | None] = [d.id for d in net.domains
                                     if link.a in d.nodes and link.b in d.nodes]
        [domain] = holders or [None]
        domains_used.append(domain)
    assert domains_used[0] == "metro-beijing" and domains_used[-1] == "metro-shanghai"
    assert {"backbone", "bsbn"} & set(domains_used)


def test_a_level1_controller_per_region_owns_its_metro_networks(net: Network) -> None:
    """Each region has its Level-1 controller; its own Level-2s are the metro networks of
    that region, the backbone and BSBN controllers are shared by all regions."""
    control = controllers_for(net)
    assert set(control.regional) == {r.id for r in net.regions}
    owner = {}
    for region, l1 in control.regional.items():
        assert all(l2.domain.kind is DomainKind.METRO for l2 in l1.local)
        for l2 in l1.local:
            assert {net.node[n].region for n in l2.domain.nodes
                    if net.node[n].kind in (NodeKind.METRO_ACCESS, NodeKind.USER)} == {region}
            owner[l2.domain.id] = region
        national = {l2.domain.id for l2 in l1.level2s if l2 not in l1.local}
        assert {"backbone", "bsbn"} <= national
    assert len(owner) == sum(d.kind is DomainKind.METRO for d in net.domains)
    assert owner["metro-beijing"] != owner["metro-shanghai"]


def test_regions_coordinate_a_route_across_them(net: Network) -> None:
    """Beijing to Shanghai users: the route crosses two regions' metros and no third
    region's metro; inside one region the region's own controller gives the same route."""
    control = controllers_for(net)
    path = control.route("beijing-m1-u1", "shanghai-m1-u1", 512)
    assert path is not None
    metros = {d.id for d in net.domains if d.kind is DomainKind.METRO
              and any(n in d.nodes and net.node[n].kind in (NodeKind.USER,
                                                            NodeKind.METRO_ACCESS)
                      for n in path.nodes)}
    assert metros == {"metro-beijing", "metro-shanghai"}
    inside = control.route("shanghai-m1-u1", "shanghai-m2-u3", 512)
    region = control.regional[net.node["shanghai-m1-u1"].region]
    assert inside == region.route("shanghai-m1-u1", "shanghai-m2-u3", 512)


def test_failure_switches_to_backup_then_reroutes_then_restores(net: Network) -> None:
    """A KM-link of the working path fails: the demand moves to its backup; the backup
    fails too: no route is left; a repair brings the demand back."""
    control = Controller(controllers_for(net))
    control.add(Demand("d", "beijing", "wuhan"))
    working, backup = control.active("d"), control.backup("d")
    assert working is not None and backup is not None
    [change] = control.report([KMLinkState(working.km_links[3], 0.0, up=False)])
    assert change.reason == "switched to backup" and change.route == backup
    [change] = control.report([KMLinkState(backup.km_links[3], 0.0, up=False)])
    assert change.reason == "no route" and control.active("d") is None
    [change] = control.report([KMLinkState(working.km_links[3], 1e9, up=True)])
    assert change.reason == "restored" and control.active("d") is not None


def test_repair_of_the_working_route_reverts_the_demand_to_it(net: Network) -> None:
    """Protection is revertive: once the failed KM-link of the planned working route is
    repaired, the demand leaves its backup and returns to the route it was planned on."""
    control = Controller(controllers_for(net))
    control.add(Demand("d", "beijing", "wuhan"))
    working, backup = control.active("d"), control.backup("d")
    assert working is not None and backup is not None
    control.report([KMLinkState(working.km_links[5], 0.0, up=False)])
    assert control.active("d") == backup
    assert control.report([KMLinkState(backup.km_links[0], 1e9, up=True)]) == []
    [change] = control.report([KMLinkState(working.km_links[5], 1e9, up=True)])
    assert change.reason == "reverted to the working route"
    assert control.active("d") == working and control.backup("d") == backup


def test_a_demand_declared_before_any_route_reverts_to_its_first_route(net: Network
                                                                        ) -> None:
    """A live demand declared while its KM-links hold no key gets no route; the route found
    once they fill becomes its plan, so after a failure and repair it comes back to it."""
    control = Controller(controllers_for(net))
    control.report([KMLinkState(km.id, 0.0) for km in net.km_links])
    control.add(Demand("d", "beijing", "wuhan"))
    assert control.active("d") is None
    [change] = control.report([KMLinkState(km.id, 1e9) for km in net.km_links])
    assert change.reason == "restored"
    first = control.active("d")
    assert first is not None and control.backup("d") is not None
    control.report([KMLinkState(first.km_links[0], 0.0, up=False)])
    assert control.active("d") != first
    [change] = control.report([KMLinkState(first.km_links[0], 1e9, up=True)])
    assert change.reason == "reverted to the working route"
    assert control.active("d") == first


def test_a_refill_that_comes_while_searches_back_off_is_not_lost(net: Network) -> None:
    """Searches for an unrouted demand back off while they fail; the refill that finally
    opens a route may come in a skipped chance, and then stay: the demand is still
    restored within the backoff (64 reports), without any further news."""
    control = Controller(controllers_for(net))
    control.report([KMLinkState(km.id, 0.0) for km in net.km_links])
    control.add(Demand("d", "beijing", "wuhan"))
    links = [km.id for km in net.km_links]
    for i in range(12):  # refills that open no route: failed searches, longer waits
        control.report([KMLinkState(links[i], 1e9)])
    control.report([KMLinkState(km, 1e9) for km in links])  # every KM-link full now
    for _ in range(70):  # nothing new is reported; the same states again
        if control.active("d") is not None:
            break
        control.report([KMLinkState(links[0], 1e9)])
    assert control.active("d") is not None


def test_a_drained_km_link_moves_the_demand_around_it(net: Network) -> None:
    """A report that a KM-link of the route holds less key than one request moves the
    demand to a route around it, though the link still refills (it would serve only its
    refill); with no way around, the demand stays."""
    control = Controller(controllers_for(net))
    control.add(Demand("d", "beijing", "wuhan", need_bits=4096))
    working = control.active("d")
    assert working is not None
    drained = working.km_links[2]
    [change] = control.report([KMLinkState(drained, 0.0, rate_bps=5000.0)])
    assert change.reason == "rerouted around drained KM-links"
    assert change.route is not None and drained not in change.route.km_links
    chain = Controller(controllers_for(net))
    chain.add(Demand("c", "harbin", "beijing", need_bits=4096))
    only = chain.active("c")
    assert only is not None
    assert chain.report([KMLinkState(only.km_links[2], 0.0, rate_bps=5000.0)]) == []
    assert chain.active("c") == only


def test_a_drained_route_is_not_left_for_a_detour_that_refills_slower(net: Network) -> None:
    """A drained route serves what its slowest KM-link refills: the demand moves around
    the drained KM-link only to a route that refills faster, and searches that find none
    back off."""
    control = Controller(controllers_for(net))
    control.add(Demand("d", "beijing", "wuhan", need_bits=4096))
    working, backup = control.active("d"), control.backup("d")
    assert working is not None and backup is not None
    slow = [KMLinkState(km, 1e6, rate_bps=1000.0) for km in backup.km_links]
    fast = [KMLinkState(km, 1e6, rate_bps=50_000.0) for km in working.km_links[1:]]
    assert control.report([*slow, *fast]) == []
    drained = KMLinkState(working.km_links[0], 0.0, rate_bps=5000.0)
    assert control.report([drained]) == []
    assert control.active("d") == working
    quicker = [KMLinkState(km, 1e6, rate_bps=1e6) for km in backup.km_links]
    assert control.report(quicker) == []  # no news on the drained route
    assert control.report([drained]) == []  # the failed search backs off one report
    [change] = control.report([drained])
    assert change.reason == "rerouted around drained KM-links"
    assert change.route is not None and working.km_links[0] not in change.route.km_links


def test_an_unroutable_demand_backs_off_but_its_own_repair_restores_it(net: Network) -> None:
    """While a chain demand has no route, repairs elsewhere trigger searches that back
    off (fewer and fewer); the repair of its own planned route restores it at once."""
    level1 = controllers_for(net)
    searches = 0
    plain = level1.protected

    def counted(*args: Any, **kwargs: Any) -> Protected | None:
        nonlocal searches
        searches += 1
        return plain(*args, **kwargs)

    level1.protected = counted  # type: ignore[method-assign]
    control = Controller(level1)
    control.add(Demand("c", "harbin", "beijing"))
    working = control.active("c")
    assert working is not None
    cut = working.km_links[4]
    [change] = control.report([KMLinkState(cut, 0.0, up=False)])
    assert change.route is None
    elsewhere = "km:wuhan~wuhan-xianning-r1"
    searches = 0
    for _ in range(40):
        control.report([KMLinkState(elsewhere, 1e6, up=False)])
        control.report([KMLinkState(elsewhere, 1e6, up=True)])
    assert 3 <= searches <= 8  # 40 pieces of news, searched after 0, 1, 2, 4, 8, 16 skips
    assert control.active("c") is None
    [change] = control.report([KMLinkState(cut, 1e6, up=True)])
    assert change.reason == "restored" and control.active("c") is not None


def test_a_failure_elsewhere_changes_nothing(net: Network) -> None:
    """Only demands whose active route uses the failed KM-link move."""
    control = Controller(controllers_for(net))
    control.add(Demand("d", "beijing", "wuhan"))
    assert control.report([KMLinkState("km:harbin~harbin-changchun-r1", 0.0, up=False)]) == []


def test_the_controller_is_the_kms_router_and_names_what_it_cannot_route(
        net: Network) -> None:
    """Controller.route declares a demand at its first request and answers its active
    route (Harbin-Shenzhen: the 64-hop backbone path); NoRoute for an unknown node or one
    no KM-link reaches (Xinjiang's ground station)."""
    router: Router = Controller.for_network(net)
    route = router.route("harbin", "shenzhen")
    assert route.hops == 64 and route.source == "harbin" and route.destination == "shenzhen"
    for (a, b), km in zip(zip(route.nodes, route.nodes[1:], strict=False), route.km_links,
                          strict=True):
        assert {net.km_link[km].a, net.km_link[km].b} == {a, b}
    with pytest.raises(NoRoute, match="unknown node 'atlantis'"):
        router.route("harbin", "atlantis")
    with pytest.raises(NoRoute, match="no KM-link route"):
        router.route("harbin", "xinjiang-gs")


def test_the_kms_route_switches_to_the_backup_on_a_failure_as_the_twins_demands_do(
        net: Network) -> None:
    """A route the KMs asked for is protected like a twin demand: a failed KM-link moves it
    to its backup (the same reason the twin records), and its repair brings it back."""
    control = Controller.for_network(net)
    working = control.route("beijing", "wuhan")
    backup = control.backup("beijing->wuhan")
    assert backup is not None and _disjoint(working.km_links, backup.km_links)
    [change] = control.report([KMLinkState(working.km_links[1], 0.0, up=False)])
    assert change.reason == "switched to backup" and control.route("beijing", "wuhan") == backup
    [change] = control.report([KMLinkState(working.km_links[1], 1e9, up=True)])
    assert change.reason == "reverted to the working route"
    assert control.route("beijing", "wuhan") == working


def test_the_key_management_layer_can_route_through_the_control_layer(
        tmp_path: FilePath) -> None:
    """The Controller is a keys Router: a key network relays over its routes."""
    network = build_cn_qcn()
    router: Router = Controller.for_network(network)
    keynet = KeyNetwork(network, tmp_path / "stores", served_nodes(network), router=router)

    async def relay() -> list[tuple[str, bytes]]:
        loop = asyncio.get_running_loop()
        keynet.supply.start(loop.time(), prefill_bits=20_000)
        keynet.supply.pump(loop.time())
        return await keynet.enc_keys("sae-harbin", "sae-beijing", 1, 256)

    [(key_id, key)] = asyncio.run(relay())
    assert asyncio.run(keynet.dec_keys("sae-beijing", "sae-harbin", [key_id])) == [(key_id, key)]
    keynet.close()


def test_the_kms_route_look_up_searches_once_and_a_cut_reroutes_at_once(
        net: Network, monkeypatch: pytest.MonkeyPatch) -> None:
    """Controller.route searches at a demand's first call only; later calls are served
    from the demand's routes until a report changes them (a cut moves it at once)."""
    control = Controller.for_network(net)
    first = control.route("beijing", "wuhan")
    searches: list[str] = []
    real = control.level1.route

    def counted(*args: Any, **kwargs: Any) -> Any:
        searches.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(control.level1, "route", counted)
    assert all(control.route("beijing", "wuhan") == first for _ in range(100))
    assert searches == []
    control.report([KMLinkState(first.km_links[0], 0.0, up=False)])
    moved = control.route("beijing", "wuhan")
    assert first.km_links[0] not in moved.km_links
    assert control.route("beijing", "wuhan") == moved
