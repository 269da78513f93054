"""Borders between separately managed domains (sans-I/O): where a route is split, the
gateways, the staged key of a far leg, and the interop KMS relaying keys on."""

from __future__ import annotations

import itertools
import uuid
from dataclasses import replace

import pytest

from qkdnet.keys.domain_border import (
    CrossBorder,
    StagedKeys,
    border_crossing,
    border_crossings,
    crossing_asked,
    gateways,
    interop_kms_id,
    link_operator,
)
from qkdnet.keys.etsi020 import ExtKey, ExtKeys, InteropKms, MemoryLedger, Problem, Void
from qkdnet.keys.memory_store import MemoryKeyStore
from qkdnet.keys.route import Route
from qkdnet.topology.model import (
    SAE,
    Domain,
    DomainKind,
    KMLink,
    KMLinkKind,
    Network,
    Node,
    NodeKind,
    QKDLink,
)
from qkdnet.topology.validation import validated


def _chain(west: str, east: str) -> Network:
    """a1 -- a2 -- g -- b1, west domain {a1, a2, g}, east domain {g, b1}."""
    names = ["a1", "a2", "g", "b1"]
    nodes = tuple(Node(n, n, NodeKind.BACKBONE_ACCESS, 30 + i, 110) for i, n in
                  enumerate(names))
    links = tuple(QKDLink(f"{a}--{b}", a, b, 40, 10, "I")
                  for a, b in itertools.pairwise(names))
    km = tuple(KMLink(f"km:{lk.a}~{lk.b}", lk.a, lk.b, KMLinkKind.DIRECT, (lk.id,))
               for lk in links)
    return validated(Network("chain", nodes, links, km, (
        Domain("west", DomainKind.BACKBONE, "West", frozenset(names[:3]), west),
        Domain("east", DomainKind.BACKBONE, "East", frozenset(names[2:]), east))))


ROUTE = Route(("a1", "a2", "g", "b1"), ("km:a1~a2", "km:a2~g", "km:g~b1"))


def test_a_route_is_split_at_the_gateway_between_two_operators() -> None:
    """Near leg a1..g over the west operator's links, far leg g..b1 over the east's."""
    network = _chain("op-west", "op-east")
    assert gateways(network) == {"g": ("op-east", "op-west")}
    crossing = border_crossing(network, ROUTE)
    assert crossing is not None
    assert (crossing.gateway, crossing.near_operator, crossing.far_operator) == \
        ("g", "op-west", "op-east")
    assert crossing.near == Route(("a1", "a2", "g"), ("km:a1~a2", "km:a2~g"))
    assert crossing.far == Route(("g", "b1"), ("km:g~b1",))
    assert border_crossing(network, ROUTE.reversed()) is not None
    assert interop_kms_id("g", "op-east") == "g.op-east"


def test_a_route_through_three_operators_crosses_two_borders_in_order() -> None:
    """West {a1, a2}, mid {a2, g}, east {g, b1}: borders at a2 then g; each far leg is
    the next border's near leg and far leg together."""
    nodes = ("a1", "a2", "g", "b1")
    network = replace(_chain("op-west", "op-east"), domains=tuple(
        Domain(name, DomainKind.BACKBONE, name, frozenset(members), name)
        for name, members in (("west", nodes[:2]), ("mid", nodes[1:3]),
                              ("east", nodes[2:]))))
    first, second = border_crossings(network, ROUTE)
    assert (first.gateway, first.near_operator, first.far_operator) == ("a2", "west", "mid")
    assert (second.gateway, second.near_operator, second.far_operator) == \
        ("g", "mid", "east")
    assert first.far.nodes == ("a2", "g", "b1") and second.near.nodes == ("a2", "g")
    assert border_crossings(_chain("", ""), ROUTE) == []


@pytest.mark.parametrize(("west", "east"), [("", ""), ("op-x", "op-x"), ("op-x", "")])
def test_no_border_without_two_different_operators(west: str, east: str) -> None:
    """Unmarked, one operator, or one side unmarked: no gateway, no split."""
    network = _chain(west, east)
    assert gateways(network) == {}
    assert border_crossing(network, ROUTE) is None


def test_a_link_in_domains_of_two_operators_belongs_to_neither() -> None:
    """A KM-link both operators' domains hold cannot tell a border: no operator."""
    network = _chain("op-west", "op-east")
    assert link_operator(network, "a2", "g") == "op-west"
    west, east = network.domains
    shared = replace(network, domains=(west, replace(east, nodes=east.nodes | {"a2"})))
    assert link_operator(shared, "a2", "g") == ""
    # a1~a2 is the west's, g~b1 the east's: the border still shows, after the shared link
    crossing = border_crossing(shared, ROUTE)
    assert crossing is not None and crossing.gateway == "g"


@pytest.mark.parametrize(("gateway", "asker", "near", "far", "why"), [
    ("g", "a1", "op-west", "op-east", ""),
    ("g", "g", "op-east", "op-west", ""),
    ("g", "a1", "op-west", "op-west", "the near and far operators are the same"),
    ("g", "a1", "op-west", "op-north", "node g is no gateway of operator op-north"),
    ("a2", "a1", "op-west", "op-east", "node a2 is no gateway of operator op-west"),
    ("g", "a2", "op-west", "op-east",
     "node a2 is neither the master SAE's node nor a gateway"),
])
def test_a_gateway_takes_keys_across_only_between_its_two_operators(
        gateway: str, asker: str, near: str, far: str, why: str) -> None:
    """A crossing is refused, with the reason, unless the master's node or a gateway asks
    it of a node where both operators meet, and they differ."""
    network = replace(_chain("op-west", "op-east"), saes=(SAE("sae-a", "a1"),))
    asked = CrossBorder(("k1",), "sae-a", "sae-b", near, far, 1)
    assert crossing_asked(network, gateway, asker, asked) == why


def test_staged_keys_give_the_staged_key_once_to_a_draw_of_its_size() -> None:
    """The staged key goes to the next draw of its size, then fresh random again; a draw
    of another size drops it (never handed out in part)."""
    staged = StagedKeys(lambda n: b"\x01" * n)
    staged.stage(b"K" * 32)
    assert "KKK" not in repr(staged)
    assert staged(32) == b"K" * 32
    assert staged(32) == b"\x01" * 32
    staged.stage(b"K" * 32)
    assert staged(16) == b"\x01" * 16
    assert not staged.clear()
    staged.stage(b"K" * 32)
    assert staged.clear()


def _far_kms() -> InteropKms:
    return InteropKms("g.op-east", MemoryKeyStore("g"), MemoryLedger(), lambda sae: False,
                      onward=lambda sae: sae == "sae-b")


def _push(*key_ids: str) -> ExtKeys:
    return ExtKeys(tuple(ExtKey(k, bytes(32)) for k in key_ids), "sae-a", ("sae-b",))


def test_keys_for_a_reachable_target_are_forwarded_then_acknowledged() -> None:
    """Keys for an SAE beyond the gateway are handed on (no ack yet, nothing held here);
    once relayed they are acknowledged ``relayed``; a failed relay acks ``failed``."""
    kms = _far_kms()
    one, two = str(uuid.uuid4()), str(uuid.uuid4())
    received = kms.receive("g.op-west", _push(one), 1.0)
    assert received.acks == () and [k.key_id for k in received.onward] == [one]
    assert kms.store.held_for(one) is None
    [ack] = kms.forwarded([one], True, 2.0)
    assert (ack.key_ids, ack.status, ack.targets) == ((one,), "relayed", ("sae-b",))
    kms.receive("g.op-west", _push(two), 3.0)
    [ack] = kms.forwarded([two], False, 4.0, "relay failed")
    assert (ack.status, ack.message) == ("failed", "relay failed")
    assert kms.ledger.get([one, two])[two].state == "failed"


def test_a_replay_while_forwarding_starts_no_second_relay_and_cannot_be_voided() -> None:
    """The same key_id again while its relay runs: no ack, nothing handed on; a void then
    answers ``failed to void``; after the relay a replay is answered as before."""
    kms = _far_kms()
    key_id = str(uuid.uuid4())
    kms.receive("g.op-west", _push(key_id), 1.0)
    again = kms.receive("g.op-west", _push(key_id), 1.5)
    assert again.acks == () and again.onward == ()
    [ack] = kms.void("g.op-west", Void((key_id,), "sae-a", ("sae-b",)), 1.6)
    assert ack.status == "failed to void"
    kms.forwarded([key_id], True, 2.0)
    [ack] = kms.receive("g.op-west", _push(key_id), 3.0).acks
    assert ack.status == "relayed" and "replayed" in (ack.message or "")


def test_an_unreachable_target_is_still_a_routing_error() -> None:
    """An SAE neither attached here nor reachable onward: 400 key-routing-error."""
    push = ExtKeys((ExtKey(str(uuid.uuid4()), bytes(32)),), "sae-a", ("sae-z",))
    with pytest.raises(Problem) as refused:
        _far_kms().receive("g.op-west", push, 1.0)
    assert (refused.value.status, refused.value.kind) == (400, "key-routing-error")
