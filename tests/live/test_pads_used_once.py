"""Every pad a relayed key uses is taken once at both ends of each hop and erased: read from
the store files of a ``qkdnet serve`` of a five-node chain before and after one key (the
files are read while no server runs: a running server holds its stores exclusively)."""

from __future__ import annotations

from pathlib import Path

from store_files import units_held

from qkdnet.apps.sae_client import SaeClient
from qkdnet.control.controller import Controller
from qkdnet.files.networks import load_network
from qkdnet.live.launch import start_serve

CHAIN = """\
qkdnet_scenario: 1
name: five-chain
nodes:
  - {id: a, kind: backbone_access, lat: 40.0, lon: 116.0}
  - {id: b, kind: backbone_relay, lat: 40.3, lon: 116.3}
  - {id: c, kind: backbone_relay, lat: 40.6, lon: 116.6}
  - {id: d, kind: backbone_relay, lat: 40.9, lon: 116.9}
  - {id: e, kind: backbone_access, lat: 41.2, lon: 117.2}
qkd_links:
  - {a: a, b: b, length_km: 50, device_type: I}
  - {a: b, b: c, length_km: 60, device_type: II}
  - {a: c, b: d, length_km: 40, device_type: I}
  - {a: d, b: e, length_km: 55, device_type: II}
saes:
  - {id: sae-a, node: a}
  - {id: sae-e, node: e}
"""
#: A negligible speed-up and no drifts: the pools change only by what the SAEs take.
STILL = ["--speedup", "1e-9", "--no-dynamics"]


def test_every_pad_on_the_route_is_used_once_and_deleted(tmp_path: Path) -> None:
    """One 256-bit key takes the same 2 units (pad + MAC key) out of both ends of each of
    the route's KM-links, and none of them is left in any store of the route."""
    scenario = tmp_path / "chain.yaml"
    scenario.write_text(CHAIN, encoding="utf-8")
    folder = tmp_path / "live"
    route = Controller.for_network(load_network(scenario)).route("a", "e")
    assert route.hops == 4
    stores = {n: folder / "stores" / f"{n}.sqlite" for n in route.nodes}

    assert start_serve(folder, str(scenario), ["--prefill-bits", "65536", *STILL]).stop() == 0
    before = {n: units_held(s, route.km_links) for n, s in stores.items()}
    served = start_serve(folder, str(scenario), STILL)
    try:
        with SaeClient.from_manifest(served.manifest, "sae-a") as master:
            [key] = master.enc_keys("sae-e", number=1, size=256)
        with SaeClient.from_manifest(served.manifest, "sae-e") as slave:
            assert slave.dec_keys("sae-a", [key.key_id])[0].material == key.material
    finally:
        assert served.stop() == 0
    after = {n: units_held(s, route.km_links) for n, s in stores.items()}

    removed = {n: before[n] - after[n] for n in stores}
    for hop, km_link in enumerate(route.km_links):
        sender, receiver = route.nodes[hop], route.nodes[hop + 1]
        at_sender = {u for u in removed[sender] if u[0] == km_link}
        at_receiver = {u for u in removed[receiver] if u[0] == km_link}
        assert at_sender == at_receiver, km_link
        assert len(at_sender) == 2, km_link
    used = set().union(*removed.values())
    assert len(used) == 2 * route.hops
    assert not used & set().union(*after.values())
