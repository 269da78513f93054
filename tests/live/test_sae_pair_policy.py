"""The SAE pair policy live: ``qkdnet serve`` of a chain whose scenario lets sae-a share keys
with sae-c only; sae-a asking for keys with sae-c2 (same node as sae-c, same route) gets 401
at enc_keys and at Status and spends no pad anywhere."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from qkdnet.apps.sae_client import SaeClient, Unauthorized
from qkdnet.live.launch import start_serve

SCENARIO = """\
qkdnet_scenario: 1
name: paired-chain
nodes:
  - {id: a, kind: backbone_access, lat: 40.0, lon: 116.0}
  - {id: b, kind: backbone_relay, lat: 40.3, lon: 116.3}
  - {id: c, kind: backbone_access, lat: 40.6, lon: 116.6}
qkd_links:
  - {a: a, b: b, length_km: 50, device_type: I}
  - {a: b, b: c, length_km: 60, device_type: II}
saes:
  - {id: sae-a, node: a}
  - {id: sae-c, node: c}
  - {id: sae-c2, node: c}
sae_pairs:
  - [sae-c, sae-a]
"""


def _pads(stores: Path) -> dict[tuple[str, str, int], int]:
    """Unused pad units of every KM-link direction in every store: (node, link, outbound)."""
    pads = {}
    for path in sorted(stores.glob("*.sqlite")):
        with sqlite3.connect(path) as db:
            for link, outbound, units in db.execute(
                    "SELECT km_link, outbound, units FROM pools"):
                pads[(path.stem, link, int(outbound))] = int(units)
    return pads


def test_a_pair_outside_the_policy_is_refused_and_spends_nothing(tmp_path: Path) -> None:
    """sae-a -> sae-c2 is 401 at enc_keys and Status with every pad unchanged; the listed
    pair sae-a -> sae-c gets its key over the same route (and spends pads)."""
    (tmp_path / "scenario.yaml").write_text(SCENARIO)
    # a negligible speedup: the pools hold their prefill while the test reads them
    served = start_serve(tmp_path / "live", str(tmp_path / "scenario.yaml"),
                         ["--prefill-bits", "65536", "--speedup", "1e-9", "--no-dynamics"])
    try:
        stores = tmp_path / "live" / "stores"
        before = _pads(stores)
        assert before and all(units > 0 for units in before.values())
        with SaeClient.from_manifest(served.manifest, "sae-a") as master:
            with pytest.raises(Unauthorized, match="may not share keys"):
                master.enc_keys("sae-c2", number=2, size=256)
            with pytest.raises(Unauthorized, match="may not share keys"):
                master.enc_keys("sae-c2", number=1, size=256, method="GET")
            with pytest.raises(Unauthorized, match="may not share keys"):
                master.status("sae-c2")
            assert _pads(stores) == before
            [key] = master.enc_keys("sae-c", number=1, size=256)
            assert master.status("sae-c").stored_key_count > 0
        assert _pads(stores) != before
        with SaeClient.from_manifest(served.manifest, "sae-c") as slave:
            assert slave.dec_keys("sae-a", [key.key_id])[0].material == key.material
    finally:
        served.stop()
