"""The downlink's loss against range and elevation, and the key of one block."""

from __future__ import annotations

import numpy as np
import pytest

from qkdnet.errors import ParameterError
from qkdnet.quantum.free_space import FreeSpaceLink, block_key_bits


def _slant_range_km(elevation_deg: float, altitude_km: float = 500.0) -> float:
    r = 6371.0
    el = np.radians(elevation_deg)
    return float(np.sqrt((r + altitude_km) ** 2 - (r * np.cos(el)) ** 2) - r * np.sin(el))


def test_loss_at_the_edge_of_a_pass_is_30_to_45_db_and_lower_at_zenith() -> None:
    """At 10-15 deg the channel loses 30-45 dB; at zenith clearly less."""
    link = FreeSpaceLink()
    edge = link.loss_db(np.array([_slant_range_km(10.0), _slant_range_km(15.0)]),
                        np.array([10.0, 15.0]))
    zenith = float(link.loss_db(500.0, 90.0))
    assert np.all((edge >= 30.0) & (edge <= 45.0))
    assert zenith < float(edge.min()) - 8.0


def test_loss_grows_with_range_and_with_air_mass() -> None:
    """More range or a lower elevation never lowers the loss."""
    link = FreeSpaceLink()
    assert np.all(np.diff(link.loss_db(np.linspace(500, 2000, 20), 45.0)) > 0)
    assert np.all(np.diff(link.atmospheric_transmittance(np.linspace(5, 90, 20))) > 0)


def test_wider_receiver_collects_more() -> None:
    """A larger ground telescope lowers the loss by about the aperture ratio squared."""
    small, big = FreeSpaceLink(rx_aperture_m=0.2), FreeSpaceLink(rx_aperture_m=0.4)
    gain_db = float(small.loss_db(1000.0, 40.0) - big.loss_db(1000.0, 40.0))
    assert gain_db == pytest.approx(10 * np.log10(4.0), abs=0.2)


def test_block_key_falls_with_loss_and_vanishes_for_tiny_blocks() -> None:
    """Key of a 300 s block shrinks with loss; a 1 ms block gives none (finite size)."""
    keys = block_key_bits(np.array([28.0, 32.0, 36.0, 40.0]), 300.0)
    assert np.all(np.diff(keys) < 0) and keys[0] > 1e6
    assert float(block_key_bits(30.0, 1e-3)) == 0.0


def test_bad_optics_are_named() -> None:
    """A non-positive aperture or a transmission over 1 names the field."""
    with pytest.raises(ParameterError, match="rx_aperture_m"):
        FreeSpaceLink(rx_aperture_m=0.0)
    with pytest.raises(ParameterError, match="zenith_transmission"):
        FreeSpaceLink(zenith_transmission=1.5)
