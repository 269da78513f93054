"""Decoy-state BB84 secure key rate in the GLLP form (types I–V).

Ma, Qi, Zhao, Lo, Phys. Rev. A 72, 012326 (2005): vacuum + weak decoy bounds on the
single-photon yield and error rate; GLLP, Quantum Inf. Comput. 4, 325 (2004): the rate.
All functions broadcast over numpy arrays of loss and parameters.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from qkdnet.quantum.channel import transmittance
from qkdnet.quantum.entropy import binary_entropy
from qkdnet.quantum.params import DecoyBB84Params

FloatArray = NDArray[np.float64]
DecoyMethod = Literal["vacuum+weak", "infinite"]

#: Error rate of background counts (random bits).
E0 = 0.5


def gain_and_error(
    eta: ArrayLike, intensity: ArrayLike, y0: ArrayLike, e_d: ArrayLike
) -> tuple[FloatArray, FloatArray]:
    """Gain Q and QBER E of pulses of mean photon number ``intensity`` at overall
    transmittance ``eta`` (channel x receiver x detector)."""
    detected = -np.expm1(-np.multiply(eta, intensity))
    gain = np.add(y0, detected)
    with np.errstate(divide="ignore", invalid="ignore"):
        qber = (E0 * np.asarray(y0) + np.multiply(e_d, detected)) / gain
    return gain, np.nan_to_num(qber, nan=E0)


def single_photon_bounds(
    eta: ArrayLike, y0: ArrayLike, e_d: ArrayLike, mu: ArrayLike, nu: ArrayLike,
    method: DecoyMethod = "vacuum+weak",
) -> tuple[FloatArray, FloatArray]:
    """Lower bound on the single-photon yield Y1 and upper bound on its error rate e1.

    ``vacuum+weak``: Ma et al. 2005, Eqs. (34) and (37). ``infinite``: the true values an
    infinite number of decoys would reveal, Y1 = 1 - (1 - Y0)(1 - eta), the limit the
    bounds approach as nu -> 0.
    """
    if method == "infinite":
        y1 = 1.0 - (1.0 - np.asarray(y0)) * (1.0 - np.asarray(eta))
        e1 = (E0 * np.asarray(y0) + np.multiply(e_d, eta)) / y1
        return y1, e1
    q_mu, _ = gain_and_error(eta, mu, y0, e_d)
    q_nu, e_nu = gain_and_error(eta, nu, y0, e_d)
    mu_a, nu_a = np.asarray(mu), np.asarray(nu)
    y1 = mu_a / (mu_a * nu_a - nu_a**2) * (
        q_nu * np.exp(nu_a)
        - q_mu * np.exp(mu_a) * nu_a**2 / mu_a**2
        - (mu_a**2 - nu_a**2) / mu_a**2 * np.asarray(y0)
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        e1 = (e_nu * q_nu * np.exp(nu_a) - E0 * np.asarray(y0)) / (y1 * nu_a)
    return y1, e1


def key_per_signal_pulse(
    eta: ArrayLike, y0: ArrayLike, e_d: ArrayLike, f_ec: ArrayLike, mu: ArrayLike,
    nu: ArrayLike, method: DecoyMethod = "vacuum+weak",
) -> FloatArray:
    """Secure bits per sifted signal pulse, Q1 (1 - H2(e1)) - f_EC Q_mu H2(E_mu), before
    clipping at zero (negative means no key): the quantity whose root is the cut-off."""
    q_mu, e_mu = gain_and_error(eta, mu, y0, e_d)
    y1, e1 = single_photon_bounds(eta, y0, e_d, mu, nu, method)
    q1 = np.asarray(mu) * np.exp(-np.asarray(mu)) * y1
    privacy = np.where(y1 > 0, q1 * (1.0 - binary_entropy(e1)), 0.0)
    return privacy - np.multiply(f_ec, q_mu) * binary_entropy(e_mu)


def overall_transmittance(loss_db: ArrayLike, params: DecoyBB84Params) -> FloatArray:
    """eta = T x t_B x eta_D: probability that a photon sent is detected."""
    eta: FloatArray = transmittance(loss_db) * params.receiver_transmittance * params.eta_d
    return eta


def decoy_bb84_skr(
    loss_db: ArrayLike, params: DecoyBB84Params, method: DecoyMethod = "vacuum+weak"
) -> FloatArray:
    """Asymptotic secure key rate (bit/s) at channel loss ``loss_db`` (dB).

    R = f_rep p_mu q [Q1 (1 - H2(e1)) - f_EC Q_mu H2(E_mu)], clipped at zero.
    """
    eta = overall_transmittance(loss_db, params)
    per_pulse = key_per_signal_pulse(
        eta, params.y0, params.e_d, params.f_ec, params.mu, params.nu, method
    )
    scale = np.multiply(np.multiply(params.rep_rate_hz, params.p_mu), params.q)
    return np.asarray(scale * np.maximum(per_pulse, 0.0), dtype=np.float64)
