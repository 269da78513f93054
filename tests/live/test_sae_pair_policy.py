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
#: A negligible speed-up and no drifts: the pools change only by what the SAEs take.
STILL = ["--speedup", "1e-9", "--no-dynamics"]
#: Units one 256-bit key takes per KM-link end (pad and MAC key), and the chain's hops.
UNITS_PER_KEY_END, HOPS = 2, 2


def test_a_pair_outside_the_policy_is_refused_and_spends_nothing(tmp_path: Path) -> None:
    """sae-a -> sae-c2 is 401 at enc_keys and Status; sae-a -> sae-c then gets its key over
    the same route, and the stores lost exactly that one key's pads."""
    (tmp_path / "scenario.yaml").write_text(SCENARIO)
    folder, stores = tmp_path / "live", tmp_path / "live" / "stores"
    # the stores are the server's own while it runs: fill them, stop, read them
    assert start_serve(folder, str(tmp_path / "scenario.yaml"),
                       ["--prefill-bits", "65536", *STILL]).stop() == 0
    before = unused_units(stores)
    assert before and all(units > 0 for units in before.values())
    served = start_serve(folder, str(tmp_path / "scenario.yaml"), STILL)
    try:
        with SaeClient.from_manifest(served.manifest, "sae-a") as master:
            with pytest.raises(Unauthorized, match="may not share keys"):
                master.enc_keys("sae-c2", number=2, size=256)
            with pytest.raises(Unauthorized, match="may not share keys"):
                master.enc_keys("sae-c2", number=1, size=256, method="GET")
            with pytest.raises(Unauthorized, match="may not share keys"):
                master.status("sae-c2")
            [key] = master.enc_keys("sae-c", number=1, size=256)
        with SaeClient.from_manifest(served.manifest, "sae-c") as slave:
            assert slave.dec_keys("sae-a", [key.key_id])[0].material == key.material
    finally:
        assert served.stop() == 0
    spent = {end: before[end] - units for end, units in unused_units(stores).items()
             if units != before[end]}
    assert sum(spent.values()) == UNITS_PER_KEY_END * 2 * HOPS, spent
