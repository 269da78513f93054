"""Remote KM-links in the twin: on examples/three-city-ring.yaml, whose chains have no direct
KM-link on their hops, the remote KM-links get the key of their slowest hop and carry the
demands between the access nodes, switching round the ring when a chain is cut; on cn-qcn
(a direct KM-link on every hop) the pools are the direct KM-links alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from qkdnet.files.networks import load_network
from qkdnet.management.availability import total
from qkdnet.topology.model import KMLinkKind
from qkdnet.topology.scenarios import BUILT_IN
from qkdnet.twin.engine import TwinResult, run_twin
from qkdnet.twin.km_supply import KMSupply
from qkdnet.twin.scenario import load_twin_scenario
from qkdnet.units import HOUR_S

RING = Path(__file__).parents[2] / "examples" / "three-city-ring.yaml"


def test_a_remote_km_link_gets_its_slowest_hops_key_and_is_up_only_with_all_its_hops(
        ) -> None:
    """The ring's remote KM-links take the smaller of their two hops' key; a cut hop
    takes its remote KM-link down, and the direct ones are fed their own link's key."""
    net = load_network(RING)
    supply = KMSupply.of(net)
    ids = [k.id for k in supply.km_links]
    assert ids == ["km-hefei-nanjing", "km-shanghai-metro", "km-nanjing-shanghai",
                   "km-shanghai-hefei"]
    column = {lk.id: i for i, lk in enumerate(net.qkd_links)}
    bits = np.arange(1.0, len(net.qkd_links) + 1) * 1000
    got = dict(zip(ids, supply.bits(bits), strict=True))
    assert got["km-hefei-nanjing"] == bits[column["hefei--nanjing"]]
    assert got["km-nanjing-shanghai"] == min(bits[column["nanjing--changzhou"]],
                                             bits[column["changzhou--shanghai"]])
    up = np.ones(len(net.qkd_links), dtype=bool)
    up[column["huzhou--hefei"]] = False
    assert dict(zip(ids, supply.up(up).tolist(), strict=True)) == {
        "km-hefei-nanjing": True, "km-shanghai-metro": True, "km-nanjing-shanghai": True,
        "km-shanghai-hefei": False}


def test_on_cn_qcn_the_pools_are_the_direct_km_links_in_qkd_link_order() -> None:
    """cn-qcn's remote KM-links run over hops with direct KM-links: none gets a pool."""
    net = BUILT_IN["cn-qcn"]()
    supply = KMSupply.of(net)
    assert any(k.kind is KMLinkKind.REMOTE for k in net.km_links)
    assert [k.path[0] for k in supply.km_links] == [lk.id for lk in net.qkd_links]
    bits = np.linspace(1.0, 2.0, len(net.qkd_links))
    assert np.array_equal(supply.bits(bits), bits)


@pytest.fixture(scope="module")
def ring(tmp_path_factory: pytest.TempPathFactory) -> TwinResult:
    folder = tmp_path_factory.mktemp("ring")
    (folder / "twin.yaml").write_text(f"""\
qkdnet_twin: 1
network: {RING}
weeks: 0.5
random_faults: false
demands:
  - {{id: hefei-shanghai, source: hefei, target: shanghai, rate_bps: 2000, key_bits: 256}}
faults:
  - {{link: huzhou--hefei, at_h: 20, duration_h: 4}}
""")
    return run_twin(load_twin_scenario(folder / "twin.yaml"))


def test_a_demand_routes_over_the_remote_km_link_and_round_the_ring_when_it_is_cut(
        ring: TwinResult) -> None:
    """Hefei-Shanghai goes over the remote KM-link Shanghai-Hefei (one hop); when its
    Huzhou-Hefei hop is cut it switches to Hefei-Nanjing and the remote Nanjing-Shanghai,
    is never unserved, and the remote pools paid for the key."""
    [service] = ring.services
    assert service.route_changes == ((0.0, "routed"), (20 * HOUR_S, "switched to backup"),
                                     (24 * HOUR_S, "reverted to the working route"))
    assert service.hops == 1  # back on the remote KM-link Shanghai-Hefei
    assert total(service.outages) == 0 and service.served_fraction > 0.99
    used = dict(zip(ring.km_link_ids, ring.used_bits, strict=True))
    assert used["km-shanghai-hefei"] > 0 and used["km-nanjing-shanghai"] > 0
    assert used["km-hefei-nanjing"] > 0
    assert np.allclose(ring.made_bits, ring.used_bits + ring.pooled_bits
                       + ring.discarded_bits, rtol=1e-9, atol=1e-3)
