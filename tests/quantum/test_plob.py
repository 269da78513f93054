"""The PLOB bound caps every model."""

from __future__ import annotations

import numpy as np
import pytest

from qkdnet.quantum.devices import CATALOGUE
from qkdnet.quantum.field import draw_field_params
from qkdnet.quantum.plob import plob_bits_per_use, plob_skr
from qkdnet.quantum.rates import plob, skr

LOSSES = np.linspace(0.01, 60.0, 600)


def test_plob_is_1_44_t_at_high_loss() -> None:
    """-log2(1 - T) tends to T / ln 2 for small T."""
    assert float(plob_bits_per_use(40.0)) == pytest.approx(1e-4 / np.log(2), rel=1e-4)


def test_plob_scales_with_repetition_rate() -> None:
    """Twice the channel uses per second, twice the bound."""
    assert float(plob_skr(20.0, 2e9)) == pytest.approx(2 * float(plob_skr(20.0, 1e9)))


@pytest.mark.parametrize("name", list(CATALOGUE))
def test_every_rate_is_below_plob_at_the_same_repetition_rate(name: str) -> None:
    """Ideal calibration, field draws and finite blocks: no rate reaches the bound."""
    device = CATALOGUE[name]
    field = draw_field_params(device, seed=7, size=LOSSES.size)
    for rate in (skr(device, LOSSES), skr(device, LOSSES, field),
                 skr(device, LOSSES, block_size=1e9)):
        assert np.all(rate < plob(device, LOSSES))
