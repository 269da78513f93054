"""The pass record the satellite model hands to the layers above: ordered times, no
negative key."""

from __future__ import annotations

import pytest

from qkdnet.quantum.satellite_pass import SatellitePass


def test_a_pass_knows_its_duration() -> None:
    """Set minus rise, in seconds."""
    p = SatellitePass("jinan-1", "beijing-gs", 100.0, 340.0, 520.0, 61.0, 4.2e5)
    assert p.duration_s == 420.0


@pytest.mark.parametrize(("times", "key"), [((100.0, 90.0, 200.0), 1.0),
                                            ((100.0, 150.0, 120.0), 1.0),
                                            ((100.0, 150.0, 200.0), -1.0)])
def test_a_pass_out_of_order_or_with_negative_key_is_refused(
        times: tuple[float, float, float], key: float) -> None:
    """Rise <= culmination <= set, key_bits >= 0; otherwise ValueError naming the pass."""
    with pytest.raises(ValueError, match="jinan-1 over beijing-gs"):
        SatellitePass("jinan-1", "beijing-gs", *times, 45.0, key)
