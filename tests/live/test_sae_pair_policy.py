"""The SAE pair policy live: ``qkdnet serve`` of a chain whose scenario lets sae-a share keys
with sae-c only; sae-a asking for keys with sae-c2 (same node as sae-c, same route) gets 401
at enc_keys and at Status and spends no pad anywhere."""

from __future__ import annotations

from pathlib import Path

import pytest
from chain_scenario import CHAIN_SCENARIO
from store_files import unused_units

from qkdnet.apps.sae_client import SaeClient, Unauthorized
from qkdnet.live.launch import start_serve

SCENARIO = CHAIN_SCENARIO + """\
  - {id: sae-c2, node: c}
sae_pairs:
  - [sae-c, sae-a]
"""


def test_a_pair_outside_the_policy_is_refused_and_spends_nothing(tmp_path: Path) -> None:
    """sae-a -> sae-c2 is 401 at enc_keys and Status with every pad unchanged; the listed
    pair sae-a -> sae-c gets its key over the same route (and spends pads)."""
    (tmp_path / "scenario.yaml").write_text(SCENARIO)
    # a negligible speedup: the pools hold their prefill while the test reads them
    served = start_serve(tmp_path / "live", str(tmp_path / "scenario.yaml"),
                         ["--prefill-bits", "65536", "--speedup", "1e-9", "--no-dynamics"])
    try:
        stores = tmp_path / "live" / "stores"
        before = unused_units(stores)
        assert before and all(units > 0 for units in before.values())
        with SaeClient.from_manifest(served.manifest, "sae-a") as master:
            with pytest.raises(Unauthorized, match="may not share keys"):
                master.enc_keys("sae-c2", number=2, size=256)
            with pytest.raises(Unauthorized, match="may not share keys"):
                master.enc_keys("sae-c2", number=1, size=256, method="GET")
            with pytest.raises(Unauthorized, match="may not share keys"):
                master.status("sae-c2")
            assert unused_units(stores) == before
            [key] = master.enc_keys("sae-c", number=1, size=256)
            assert master.status("sae-c").stored_key_count > 0
        assert unused_units(stores) != before
        with SaeClient.from_manifest(served.manifest, "sae-c") as slave:
            assert slave.dec_keys("sae-a", [key.key_id])[0].material == key.material
    finally:
        served.stop()
