"""The one entry point for any device type."""

from __future__ import annotations

import numpy as np
import pytest

from qkdnet.errors import ParameterError
from qkdnet.quantum.devices import CATALOGUE, device_type
from qkdnet.quantum.field import pessimistic_params
from qkdnet.quantum.rates import skr

LOSSES = np.linspace(0.0, 60.0, 1201)


@pytest.mark.parametrize("name", list(CATALOGUE))
def test_rates_fall_monotonically_with_loss(name: str) -> None:
    """Ideal, pessimistic-field and finite-key rates never rise as loss grows."""
    device = CATALOGUE[name]
    for rate in (skr(device, LOSSES), skr(device, LOSSES, pessimistic_params(device)),
                 skr(device, LOSSES, block_size=1e10)):
        assert rate[0] > 0
        assert np.all(np.diff(rate) <= 0)


def test_parameters_of_the_other_protocol_are_refused() -> None:
    """A CV parameter set cannot drive a DV device."""
    with pytest.raises(ParameterError, match="params=CVParams"):
        skr(device_type("I"), 10.0, device_type("VI").params)


def test_result_shape_follows_loss_and_parameters() -> None:
    """Loss of shape (3, 1) against 4 links gives a (3, 4) table of rates."""
    device = device_type("V")
    links = device.params.replace(e_d=np.array([0.005, 0.01, 0.015, 0.02]))
    rates = skr(device, np.array([[5.0], [10.0], [15.0]]), links)
    assert rates.shape == (3, 4)
    assert np.all(np.diff(rates, axis=1) < 0)  # more intrinsic QBER, less key
