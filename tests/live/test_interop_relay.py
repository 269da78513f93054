"""Keys across the border of two separately managed domains: relayed to the gateway, pushed
over real mutual-TLS ETSI GS QKD 020 between the gateway's two interop KMSs, relayed on,
released only once relayed (real SQLite stores and ledgers, PKI from ``init_pki``)."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import httpx
import pytest

from qkdnet.apps.sae_client import SaeClient, tls_context
from qkdnet.files.networks import load_network
from qkdnet.keys.domain_border import CrossBorder, Crossed, interop_kms_ids
from qkdnet.keys.etsi014 import ApiError
from qkdnet.keys.etsi020 import ExtKey, ExtKeys
from qkdnet.keys.km_wire import Envelope
from qkdnet.keys.messages import KeyRequest
from qkdnet.keys.supply_sync import KmMessage
from qkdnet.live.etsi020_app import EXT_KEYS, CallbackPolicy
from qkdnet.live.etsi020_ledger import SQLiteLedger
from qkdnet.live.interop_relay import BorderKeyNetwork
from qkdnet.live.key_ids import new_key_id
from qkdnet.live.keynet import served_nodes
from qkdnet.live.launch import start_serve
from qkdnet.live.pki import init_pki
from qkdnet.topology.model import Network

T = TypeVar("T")

SCENARIO = """\
qkdnet_scenario: 1
name: two-operators
nodes:
  - {id: a1, kind: backbone_access, lat: 30, lon: 110}
  - {id: a2, kind: backbone_relay, lat: 30.3, lon: 110.3}
  - {id: g, kind: backbone_access, lat: 30.6, lon: 110.6}
  - {id: b1, kind: backbone_relay, lat: 30.9, lon: 110.9}
  - {id: b2, kind: backbone_access, lat: 31.2, lon: 111.2}
qkd_links:
  - {a: a1, b: a2, length_km: 40, loss_db: 10, device_type: I}
  - {a: a2, b: g, length_km: 40, loss_db: 10, device_type: I}
  - {a: g, b: b1, length_km: 40, loss_db: 10, device_type: I}
  - {a: b1, b: b2, length_km: 40, loss_db: 10, device_type: I}
domains:
  - {id: west, kind: backbone, nodes: [a1, a2, g]MARK_A}
  - {id: east, kind: backbone, nodes: [g, b1, b2]MARK_B}
saes:
  - {id: sae-a, node: a1}
  - {id: sae-b, node: b2}
"""


#: The same chain in three operators' domains: two borders, at a2 and at b1.
THREE_DOMAINS = """\
domains:
  - {id: west, kind: backbone, nodes: [a1, a2], managed_by: op-west}
  - {id: mid, kind: backbone, nodes: [a2, g, b1], managed_by: op-mid}
  - {id: east, kind: backbone, nodes: [b1, b2], managed_by: op-east}
saes:
"""


def _network(tmp_path: Path, marked: bool = True, three: bool = False) -> Network:
    path = tmp_path / "two.yaml"
    text = SCENARIO.replace("MARK_A", ", managed_by: op-west" if marked else "") \
        .replace("MARK_B", ", managed_by: op-east" if marked else "")
    if three:
        text = text[:text.index("domains:")] + THREE_DOMAINS + text[text.index("saes:\n")
                                                                  + len("saes:\n"):]
    path.write_text(text)
    return load_network(path)


def _border(tmp_path: Path, three: bool = False
            ) -> tuple[Network, Callable[[Callable[[BorderKeyNetwork], Awaitable[T]]], T]]:
    network = _network(tmp_path, three=three)
    nodes = served_nodes(network)
    pki = init_pki(tmp_path / "pki", interop_kms_ids(network, nodes), ["sae-a", "sae-b"])

    def run(body: Callable[[BorderKeyNetwork], Awaitable[T]]) -> T:
        async def go() -> T:
            net = BorderKeyNetwork(network, tmp_path / "stores", nodes, pki, timeout_s=2.0,
                                   callbacks=CallbackPolicy(3, 0.05, 0.2, 2.0))
            loop = asyncio.get_running_loop()
            net.supply.start(loop.time(), prefill_bits=100_000)
            net.supply.pump(loop.time())
            await net.start_borders()
            try:
                return await body(net)
            finally:
                await net.stop_borders()
                net.close()
        return asyncio.run(go())
    return network, run


def test_keys_cross_the_border_through_020_and_reach_both_saes_identical(
        tmp_path: Path) -> None:
    """The slave gets exactly the master's keys; both gateway ledgers show them relayed;
    the near KMS's acknowledgement arrived at its callback over TLS."""
    network, run = _border(tmp_path)

    async def body(net: BorderKeyNetwork) -> None:
        keys = await net.enc_keys("sae-a", "sae-b", 3, 256)
        ids = [k for k, _ in keys]
        assert await net.dec_keys("sae-b", "sae-a", ids) == keys
        near, far = net.interop["g.op-west"], net.interop["g.op-east"]
        out, inbound = near.ledger.get(ids), far.ledger.get(ids)
        assert {e.state for e in out.values()} == {"relayed"}
        assert all(not e.inbound and e.peer == "g.op-east" for e in out.values())
        assert {e.state for e in inbound.values()} == {"relayed"}
        assert all(e.inbound and e.targets == ("sae-b",) for e in inbound.values())
        assert net.apps["g.op-east"].delivered == [(net.urls["g.op-west"] + "/kmapi/v1/"
                                                     "ext_keys/ack", 200)]
        # nothing is left held at the gateway: the near KMS took the keys to push them
        assert all(net.stores["g"].held_for(k) is None for k in ids)

    run(body)
    assert set(interop_kms_ids(network, served_nodes(network))) == {"g.op-west", "g.op-east"}


class _Answers:
    """Stands for the KM-to-KM transport at the gateway: keeps what it sends."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, KmMessage]] = []

    def send(self, sender: str, to: str, message: KmMessage, ident: str | None = None,
             age_s: float = 0.0) -> None:
        self.sent.append((sender, to, message))


def test_a_crossing_asked_again_pushes_nothing_more(tmp_path: Path) -> None:
    """A gateway asked over KM-to-KM to take keys across (as a source in another process
    asks) pushes them once and answers relayed; the request repeated in the batch, or
    again from another node that may ask (a gateway), pushes nothing more: the keys are
    gone from the gateway's store, and the slave gets them once."""
    _, run = _border(tmp_path)

    async def body(net: BorderKeyNetwork) -> None:
        answers = _Answers()
        net.remote = answers  # type: ignore[assignment]  # only the answers go out
        ids = (new_key_id(), new_key_id())
        material = await net.relay(KeyRequest(ids, 256, "sae-a", "sae-b",
                                              net.router.route("a1", "g")))
        asked = CrossBorder(ids, "sae-a", "sae-b", "op-west", "op-east", 1)
        assert await net.receive("a1", [Envelope("m1", "g", asked),
                                        Envelope("m2", "g", asked)]) == []
        async with asyncio.timeout(10):
            while not answers.sent:
                await asyncio.sleep(0.01)
        assert await net.receive("g", [Envelope("m3", "g", asked)]) == []
        async with asyncio.timeout(10):
            while len(answers.sent) < 2:
                await asyncio.sleep(0.01)
        assert answers.sent == [("g", "a1", Crossed(ids, True)),
                                ("g", "g", Crossed(ids, False))]
        assert await net.dec_keys("sae-b", "sae-a", list(ids)) == \
            [(ids[0], material[:32]), (ids[1], material[32:])]
        assert {e.state for e in net.interop["g.op-west"].ledger.get(ids).values()} == \
            {"relayed"}

    run(body)


def test_requests_crossing_at_once_each_get_their_own_keys(tmp_path: Path) -> None:
    """Six Get key calls across the border at once: every one gets keys the slave then
    gets identical, no key_id twice, and no key material shared between two of them."""
    _, run = _border(tmp_path)

    async def body(net: BorderKeyNetwork) -> None:
        answers = await asyncio.gather(*(net.enc_keys("sae-a", "sae-b", 2, 256)
                                         for _ in range(6)))
        keys = [k for answer in answers for k in answer]
        assert len({k for k, _ in keys}) == len({v for _, v in keys}) == 12
        for answer in answers:
            assert await net.dec_keys("sae-b", "sae-a", [k for k, _ in answer]) == answer

    run(body)


def test_keys_cross_two_borders_one_after_the_other(tmp_path: Path) -> None:
    """West -> mid -> east: the keys cross at a2 and then at b1, each border's far KMS
    acknowledging ``relayed`` only once the next border's has; the slave gets the master's
    keys; the four interop KMSs' ledgers all show them relayed."""
    network, run = _border(tmp_path, three=True)
    assert set(interop_kms_ids(network, served_nodes(network))) == {
        "a2.op-west", "a2.op-mid", "b1.op-mid", "b1.op-east"}

    async def body(net: BorderKeyNetwork) -> None:
        keys = await net.enc_keys("sae-a", "sae-b", 2, 256)
        ids = [k for k, _ in keys]
        assert await net.dec_keys("sae-b", "sae-a", ids) == keys
        for name, inbound in (("a2.op-west", False), ("a2.op-mid", True),
                              ("b1.op-mid", False), ("b1.op-east", True)):
            entries = net.interop[name].ledger.get(ids)
            assert {(e.state, e.inbound) for e in entries.values()} == {("relayed", inbound)}
            assert len(entries) == 2, name

    run(body)


def test_a_replayed_ext_keys_key_id_yields_no_second_key(tmp_path: Path) -> None:
    """The near KMS sending a delivered key_id again (another value) is answered from the
    ledger; nothing new is held at the target's node and the slave gets nothing more."""
    _, run = _border(tmp_path)

    async def body(net: BorderKeyNetwork) -> None:
        [(key_id, _)] = await net.enc_keys("sae-a", "sae-b", 1, 256)
        await net.dec_keys("sae-b", "sae-a", [key_id])
        pki = tmp_path / "pki"
        ssl = tls_context(pki / "kme" / "g.op-west.crt", pki / "kme" / "g.op-west.key",
                          pki / "ca.crt")
        replay = {"keys": [{"key_id": key_id,
                            "value": base64.b64encode(bytes(32)).decode()}],
                  "initiator_sae_id": "sae-a", "target_sae_ids": ["sae-b"]}
        async with httpx.AsyncClient(verify=ssl) as client:
            reply = await client.post(net.urls["g.op-east"] + EXT_KEYS, json=replay)
        assert reply.status_code == 200
        [ack] = reply.json()
        assert ack["ack_status"] == "relayed" and "replayed" in ack["message"]
        assert net.stores["b2"].held_for(key_id) is None
        with pytest.raises(ApiError) as again:
            await net.dec_keys("sae-b", "sae-a", [key_id])
        assert again.value.status == 400

    run(body)


def test_a_far_leg_failure_leaves_the_key_undelivered_at_both_ends(tmp_path: Path) -> None:
    """With the far domain's relay node stopped, the far KMS acknowledges ``failed``: the
    master gets 503, the key is not held at the target's node or the gateway, and the
    ledgers record it failed."""
    _, run = _border(tmp_path)

    async def body(net: BorderKeyNetwork) -> None:
        net.faults.stop("b1")
        with pytest.raises(ApiError) as refused:
            await net.enc_keys("sae-a", "sae-b", 1, 256)
        assert refused.value.status == 503 and "border at node g" in refused.value.message
        near, far = net.interop["g.op-west"], net.interop["g.op-east"]
        [entry] = near.ledger.between("g.op-east", "sae-a", ["sae-b"])
        assert entry.state == "failed"
        assert far.ledger.get([entry.key_id])[entry.key_id].state == "failed"
        assert net.stores["b2"].held_for(entry.key_id) is None
        assert net.stores["g"].held_for(entry.key_id) is None

    run(body)


def test_unmarked_domains_relay_straight_through_without_020(tmp_path: Path) -> None:
    """The same scenario without ``managed_by``: no gateway, no interop KMS, the plain
    hop relay a1 -> b2 (the same keys at both SAEs, none held at g)."""
    network = _network(tmp_path, marked=False)
    assert interop_kms_ids(network, served_nodes(network)) == []
    pki = init_pki(tmp_path / "pki", [], ["sae-a", "sae-b"])

    async def go() -> None:
        net = BorderKeyNetwork(network, tmp_path / "stores", served_nodes(network), pki)
        assert net.interop == {}
        loop = asyncio.get_running_loop()
        net.supply.start(loop.time(), prefill_bits=100_000)
        net.supply.pump(loop.time())
        keys = await net.enc_keys("sae-a", "sae-b", 2, 256)
        assert await net.dec_keys("sae-b", "sae-a", [k for k, _ in keys]) == keys
        net.close()

    asyncio.run(go())


EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "two-operators.yaml"


def test_qkdnet_serve_relays_across_the_example_border_through_020(tmp_path: Path) -> None:
    """``qkdnet serve`` of examples/two-operators.yaml: the bank's Hefei office gets keys
    for its Shanghai office through the interop KMSs at shanghai (listed in the manifest);
    the Shanghai office gets the same keys from its KME; after the stop, both ledgers
    record them relayed."""
    folder = tmp_path / "live"
    served = start_serve(folder, str(EXAMPLE), ["--prefill-bits", "65536", "--speedup",
                                                 "1e-9", "--no-dynamics"])
    try:
        assert set(served.manifest["interop_kms"]) == {
            "shanghai.backbone-operator", "shanghai.shanghai-metro-operator"}
        with SaeClient.from_manifest(served.manifest, "bank-hefei") as master:
            keys = master.enc_keys("bank-shanghai", number=2, size=256)
        with SaeClient.from_manifest(served.manifest, "bank-shanghai") as slave:
            got = slave.dec_keys("bank-hefei", [k.key_id for k in keys])
        assert [(k.key_id, k.material) for k in got] == \
            [(k.key_id, k.material) for k in keys]
    finally:
        assert served.stop() == 0
    ids = [k.key_id for k in keys]
    for name, inbound in (("shanghai.backbone-operator", False),
                          ("shanghai.shanghai-metro-operator", True)):
        ledger = SQLiteLedger(folder / "stores" / f"{name}.etsi020.sqlite")
        entries = ledger.get(ids)
        ledger.close()
        assert {(e.state, e.inbound) for e in entries.values()} == {("relayed", inbound)}
        assert len(entries) == 2


def test_a_relay_on_cut_short_by_a_stop_is_failed_at_the_next_start(tmp_path: Path) -> None:
    """A key_id left ``forwarding`` in the far KMS's ledger file (the process stopped
    mid-relay) is ``failed`` once the network starts again, and a replay of it is then
    answered ``failed``, holding nothing."""
    _, run = _border(tmp_path)
    key_id = "5b0c2f6e-8d1a-4c3b-9e7f-0a1b2c3d4e5f"

    async def cut_short(net: BorderKeyNetwork) -> None:
        far = net.interop["g.op-east"]
        far.receive("g.op-west", ExtKeys((ExtKey(key_id, bytes(32)),), "sae-a",
                                         ("sae-b",)), 1.0)
        assert far.ledger.get([key_id])[key_id].state == "forwarding"

    async def restarted(net: BorderKeyNetwork) -> None:
        far = net.interop["g.op-east"]
        assert far.ledger.get([key_id])[key_id].state == "failed"
        [ack] = far.receive("g.op-west", ExtKeys((ExtKey(key_id, bytes(32)),), "sae-a",
                                                 ("sae-b",)), 2.0).acks
        assert ack.status == "failed"
        assert net.stores["b2"].held_for(key_id) is None

    run(cut_short)
    run(restarted)
