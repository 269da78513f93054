"""Decoy-state BB84: published anchors, bounds and the calibration's sanity range."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import brentq

from qkdnet.quantum.decoy_bb84 import (
    decoy_bb84_skr,
    gain_and_error,
    key_per_signal_pulse,
    single_photon_bounds,
)
from qkdnet.quantum.devices import BACKBONE_DEVICE_TYPES, device_type
from qkdnet.quantum.params import DecoyBB84Params

# GYS experiment as used by Ma, Qi, Zhao, Lo, PRA 72, 012326 (2005), Table I.
GYS = {"alpha_db_per_km": 0.21, "e_d": 0.033, "y0": 1.7e-6, "eta_bob": 0.045, "f_ec": 1.22}
MUS = np.linspace(0.01, 1.5, 1500)


def _best_rate_gys(distance_km: float, method: str, nu: float = 0.01) -> float:
    """Key per pulse at the best signal intensity, with the GYS parameters."""
    eta = GYS["eta_bob"] * 10 ** (-GYS["alpha_db_per_km"] * distance_km / 10)
    rates = key_per_signal_pulse(eta, GYS["y0"], GYS["e_d"], GYS["f_ec"], MUS,
                                 np.minimum(nu, MUS / 2), method)  # type: ignore[arg-type]
    return float(rates.max())


def test_infinite_decoy_cutoff_with_gys_parameters_is_142_km() -> None:
    """Ma et al. 2005 find 142 km for the infinite-decoy cut-off with the GYS parameters."""
    cutoff = brentq(lambda d: _best_rate_gys(d, "infinite"), 50.0, 250.0)
    assert cutoff == pytest.approx(142.0, abs=1.0)


def test_vacuum_plus_weak_decoy_approaches_infinite_decoy_as_nu_shrinks() -> None:
    """The two-decoy bound never beats infinite decoys and closes in on them as nu -> 0."""
    infinite = brentq(lambda d: _best_rate_gys(d, "infinite"), 50.0, 250.0)
    cutoffs = [brentq(lambda d, nu=nu: _best_rate_gys(d, "vacuum+weak", nu), 50.0, 250.0)
               for nu in (0.2, 0.1, 0.05, 0.01)]
    assert all(c <= infinite + 1e-9 for c in cutoffs)
    assert cutoffs == sorted(cutoffs)
    assert infinite - cutoffs[-1] < 0.5


def test_single_photon_bounds_are_conservative() -> None:
    """The decoy estimate of Y1 is a lower bound and of e1 an upper bound on the truth."""
    eta = np.geomspace(1e-1, 1e-5, 50)
    y1_low, e1_up = single_photon_bounds(eta, 2.4e-6, 0.01, 0.5, 0.1)
    y1_true, e1_true = single_photon_bounds(eta, 2.4e-6, 0.01, 0.5, 0.1, "infinite")
    assert np.all(y1_low <= y1_true)
    assert np.all(e1_up >= e1_true)


def test_gain_and_error_follow_the_poisson_source() -> None:
    """With no dark counts, Q = 1 - exp(-eta mu) and E equals the intrinsic error."""
    gain, qber = gain_and_error(0.01, 0.5, 0.0, 0.02)
    assert float(gain) == pytest.approx(1 - np.exp(-0.005))
    assert float(qber) == pytest.approx(0.02)


@pytest.mark.parametrize("name", BACKBONE_DEVICE_TYPES)
def test_backbone_types_at_mean_backbone_loss_give_10_to_100_kbps(name: str) -> None:
    """At the paper's average 18.61 dB every backbone type lands in 10-100 kbit/s."""
    rate = float(decoy_bb84_skr(18.61, device_type(name).params))  # type: ignore[arg-type]
    assert 10e3 < rate < 100e3


def test_rate_falls_monotonically_with_loss() -> None:
    """More loss never gives more key; the rate reaches zero and stays there."""
    loss = np.linspace(0, 50, 2001)
    rates = decoy_bb84_skr(loss, DecoyBB84Params())
    assert np.all(np.diff(rates) <= 0)
    assert rates[0] > 0 and rates[-1] == 0


def test_parameters_broadcast_against_loss() -> None:
    """Arrays of per-link parameters give the same rates as one call per link."""
    e_d = np.array([0.005, 0.01, 0.02])
    dark = np.array([600.0, 800.0, 1000.0])
    loss = np.array([10.0, 18.0, 25.0])
    together = decoy_bb84_skr(loss, DecoyBB84Params(e_d=e_d, dark_count_hz=dark))
    one_by_one = [float(decoy_bb84_skr(x, DecoyBB84Params(e_d=e, dark_count_hz=d)))
                  for x, e, d in zip(loss, e_d, dark, strict=True)]
    assert together == pytest.approx(one_by_one, rel=1e-12)
