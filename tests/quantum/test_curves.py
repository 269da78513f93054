"""The data of Fig. 3 and Fig. 4: ideal and worst-field key rates under the PLOB bound."""

from __future__ import annotations

import numpy as np
import pytest

from qkdnet.quantum.curves import skr_curves
from qkdnet.quantum.devices import BACKBONE_DEVICE_TYPES, METRO_DEVICE_TYPES, device_type
from qkdnet.quantum.rates import skr

LOSSES = np.arange(0.0, 40.01, 2.0)


@pytest.mark.parametrize("types", [BACKBONE_DEVICE_TYPES, METRO_DEVICE_TYPES],
                         ids=["backbone", "metro"])
def test_one_row_per_type_and_loss_in_order(types: tuple[str, ...]) -> None:
    """The rows run through each type's losses in turn."""
    rows = skr_curves(types, LOSSES)
    assert [(r["type"], r["loss_db"]) for r in rows] == [
        (name, float(x)) for name in types for x in LOSSES]


def test_the_ideal_curve_is_the_catalogue_rate() -> None:
    """The ideal column is the device's SKR at its calibrated parameters."""
    rows = skr_curves(["I"], LOSSES)
    assert [r["skr_ideal_bps"] for r in rows] == pytest.approx(skr(device_type("I"), LOSSES))


@pytest.mark.parametrize("name", [*BACKBONE_DEVICE_TYPES, *METRO_DEVICE_TYPES])
def test_the_field_band_lies_below_the_ideal_and_both_under_plob(name: str) -> None:
    """Worst field <= ideal <= PLOB at every loss beyond 0 dB (where PLOB is infinite)."""
    for row in skr_curves([name], LOSSES[1:]):
        assert 0 <= float(row["skr_field_worst_bps"]) <= float(row["skr_ideal_bps"])
        assert float(row["skr_ideal_bps"]) <= float(row["plob_bps"])
