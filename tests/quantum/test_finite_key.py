"""Finite-key rates: below the asymptotic rate, rising toward it as the block grows."""

from __future__ import annotations

import numpy as np
import pytest

from qkdnet.errors import ParameterError
from qkdnet.quantum.devices import CATALOGUE, device_type
from qkdnet.quantum.finite_key import cv_finite_skr
from qkdnet.quantum.rates import skr
from qkdnet.quantum.reach import minimum_block_size

BLOCKS = np.geomspace(1e6, 1e15, 19)
LOSS = {"I": 18.61, "II": 18.61, "III": 18.61, "IV": 18.61, "V": 10.0, "VI": 5.0, "VII": 5.0}


@pytest.mark.parametrize("name", list(CATALOGUE))
def test_finite_key_rate_rises_toward_the_asymptotic_rate(name: str) -> None:
    """Larger blocks give more key per second, never more than the asymptotic rate, and
    within 1% of it for the largest blocks."""
    device = device_type(name)
    finite = skr(device, LOSS[name], block_size=BLOCKS)
    asymptotic = float(skr(device, LOSS[name]))
    assert np.all(np.diff(finite) >= 0)
    assert np.all(finite <= asymptotic)
    assert finite[-1] > 0.99 * asymptotic
    assert finite[0] < 0.9 * asymptotic


def test_dv_finite_key_at_a_million_bits_is_a_fraction_of_asymptotic() -> None:
    """Small blocks pay dearly for statistics: 1e6 sifted bits give roughly half the key."""
    device = device_type("I")
    ratio = float(skr(device, 18.61, block_size=1e6) / skr(device, 18.61))
    assert 0.2 < ratio < 0.8


def test_a_stricter_security_parameter_costs_key() -> None:
    """Smaller epsilon, less key."""
    device = device_type("III")
    loose = float(skr(device, 18.61, block_size=1e7, epsilon=1e-6))
    strict = float(skr(device, 18.61, block_size=1e7, epsilon=1e-15))
    assert strict < loose


@pytest.mark.parametrize("name", ["I", "VI"])
def test_minimum_block_size_separates_no_key_from_key(name: str) -> None:
    """Just below the minimum block there is no key even at 0 dB; at it there is."""
    device = device_type(name)
    need = minimum_block_size(device)
    assert 1e3 < need < 1e9
    assert float(skr(device, 0.0, block_size=need * 0.98)) == 0.0
    assert float(skr(device, 0.0, block_size=need)) > 0.0


def test_fixed_parameter_estimation_fraction_never_beats_the_optimised_one() -> None:
    """Optimising m/N per point is at least as good as any fixed choice."""
    params = device_type("VII").params
    best = float(cv_finite_skr(5.0, params, 1e9))  # type: ignore[arg-type]
    for fraction in (0.01, 0.1, 0.5):
        assert float(cv_finite_skr(5.0, params, 1e9, pe_fraction=fraction)) <= best + 1e-9  # type: ignore[arg-type]


def test_block_size_below_one_is_refused() -> None:
    """A block must hold at least one bit."""
    with pytest.raises(ParameterError, match="block_size"):
        skr(device_type("I"), 10.0, block_size=0.5)
