"""Finite-key secure key rates for a block of given size and security parameter.

DV: the statistical analysis of Lim, Curty, Walenta, Xu, Zbinden, PRA 89, 022307 (2014) —
Hoeffding bounds on the decoy-state counts, the random-sampling term gamma on the phase
error, and the epsilon accounting 6 log2(21/eps_sec) + log2(2/eps_cor) — applied to the
protocol of the asymptotic model (decoy_bb84): symmetric bases, key from sifted signal
pulses, decoys for estimation. Its rate therefore tends to the asymptotic GLLP rate as the
block grows. The block is the number of sifted detections (all intensities) in bits.

CV: Leverrier, Grosshans, Grangier, PRA 81, 062343 (2010): m of the N symbols estimate the
channel; T and xi are taken at the edge of their confidence intervals; the key carries the
finite-size offset Delta(n) = 7 sqrt(log2(2/eps)/n) + (2/n) log2(1/eps_PA). Heterodyne data
are treated as two homodyne quadratures at transmittance eta T / 2. The fraction m/N is
optimised per point unless given. The block is the number of symbols N.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import erfcinv

from qkdnet.errors import ParameterError
from qkdnet.quantum.channel import transmittance
from qkdnet.quantum.cv_gg02 import holevo_bound, input_excess_noise, mutual_information
from qkdnet.quantum.decoy_bb84 import E0, gain_and_error, overall_transmittance
from qkdnet.quantum.entropy import binary_entropy
from qkdnet.quantum.params import CVParams, DecoyBB84Params

FloatArray = NDArray[np.float64]

DEFAULT_EPSILON = 1e-10
DEFAULT_EPS_COR = 1e-15
#: Parameter-estimation fractions m/N tried when none is given (CV).
PE_FRACTIONS = np.geomspace(1e-4, 0.5, 48)


def _check_block(block_size: ArrayLike, epsilon: float) -> FloatArray:
    block = np.asarray(block_size, dtype=np.float64)
    if np.any(~(block >= 1)):
        raise ParameterError("block_size", float(block[~(block >= 1)].flat[0]),
                             "block size must be >= 1")
    if not 0 < epsilon < 1:
        raise ParameterError("epsilon", epsilon, "security parameter must be in (0, 1)")
    return block


def sampling_deviation(a: float, b: FloatArray, c: FloatArray, d: FloatArray) -> FloatArray:
    """Lim et al.'s gamma(a, b, c, d): the most the error rate of a random sample of size c
    can differ from that of the other d events, at error rate b, except with probability a."""
    b = np.clip(b, 1e-12, 0.5)
    with np.errstate(divide="ignore", invalid="ignore"):
        inner = (c + d) / (c * d * (1 - b) * b) * 21.0**2 / a**2
        value = np.sqrt((c + d) * (1 - b) * b / (c * d * np.log(2)) * np.log2(inner))
    return np.where((c > 0) & (d > 0), value, np.inf)


def decoy_bb84_finite_skr(
    loss_db: ArrayLike, params: DecoyBB84Params, block_size: ArrayLike,
    epsilon: float = DEFAULT_EPSILON, eps_cor: float = DEFAULT_EPS_COR,
) -> FloatArray:
    """Finite-key secure key rate (bit/s) for blocks of ``block_size`` sifted detections."""
    n = _check_block(block_size, epsilon)
    eta = overall_transmittance(loss_db, params)
    y0 = np.asarray(params.y0)
    mu, nu = np.asarray(params.mu), np.asarray(params.nu)
    q_mu, e_mu = gain_and_error(eta, mu, y0, params.e_d)
    q_nu, e_nu = gain_and_error(eta, nu, y0, params.e_d)
    sift = [np.multiply(params.q, p) for p in (params.p_mu, params.p_nu, params.p_vac)]
    gains = (q_mu, q_nu, y0)
    errors = (e_mu * q_mu, e_nu * q_nu, E0 * y0)
    pulses = n / sum(s * g for s, g in zip(sift, gains, strict=True))  # N for one block
    counts = [pulses * s * g for s, g in zip(sift, gains, strict=True)]
    wrong = [pulses * s * e for s, e in zip(sift, errors, strict=True)]

    log_term = np.log(21.0 / epsilon)
    dn = np.sqrt(n / 2.0 * log_term)
    dm = np.sqrt(sum(wrong) / 2.0 * log_term)
    norm = [pulses * s for s in sift]
    # Hoeffding: expected yields lie within the observed counts +- the deviation.
    y_mu_up = (counts[0] + dn) / norm[0]
    y_nu_low = (counts[1] - dn) / norm[1]
    y0_up = (counts[2] + dn) / norm[2]
    y0_low = np.maximum(counts[2] - dn, 0.0) / norm[2]
    ey_nu_up = (wrong[1] + dm) / norm[1]
    ey0_low = np.maximum(wrong[2] - dm, 0.0) / norm[2]

    y1 = mu / (mu * nu - nu**2) * (
        y_nu_low * np.exp(nu) - y0_up - nu**2 / mu**2 * (y_mu_up * np.exp(mu) - y0_low)
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        e1 = (ey_nu_up * np.exp(nu) - ey0_low) / (nu * y1)
    singles = pulses * sift[0] * mu * np.exp(-mu) * np.maximum(y1, 0.0)
    phase = np.minimum(e1 + sampling_deviation(epsilon, e1, singles, singles), 0.5)
    key = (
        np.where(y1 > 0, singles * (1.0 - binary_entropy(phase)), 0.0)
        - np.multiply(params.f_ec, counts[0]) * binary_entropy(e_mu)
        - 6.0 * np.log2(21.0 / epsilon) - np.log2(2.0 / eps_cor)
    )
    rate = np.multiply(params.rep_rate_hz, np.maximum(key, 0.0) / pulses)
    return np.asarray(np.nan_to_num(rate, nan=0.0), dtype=np.float64)


def cv_finite_skr(
    loss_db: ArrayLike, params: CVParams, block_size: ArrayLike,
    epsilon: float = DEFAULT_EPSILON, pe_fraction: float | None = None,
) -> FloatArray:
    """Finite-key secure key rate (bit/s) for blocks of ``block_size`` symbols.

    ``epsilon`` is shared equally by parameter estimation, smoothing and privacy
    amplification. ``pe_fraction`` is m/N; None optimises it over :data:`PE_FRACTIONS`.
    """
    big_n = _check_block(block_size, epsilon)
    if pe_fraction is not None and not 0 < pe_fraction < 1:
        raise ParameterError("pe_fraction", pe_fraction, "must be in (0, 1)")
    eps = epsilon / 3.0
    fractions = PE_FRACTIONS if pe_fraction is None else np.array([pe_fraction])
    t = transmittance(loss_db)
    shape = np.broadcast_shapes(np.shape(t), params.shape, np.shape(big_n))

    def grid(x: ArrayLike) -> FloatArray:
        return np.broadcast_to(np.asarray(x, dtype=np.float64), shape)[..., None]

    # The estimator sees the total noise at Bob's input, whatever its origin: refer all of it
    # to the channel input, as the asymptotic model does.
    t_g, eta, v_el, xi, v_a, n_total = map(
        grid, (t, params.eta, params.v_el, input_excess_noise(t, params), params.v_a, big_n)
    )
    quadratures = 1.0 if params.detection == "homodyne" else 2.0
    m = fractions * n_total * quadratures
    n_key = (1.0 - fractions) * n_total
    z = np.sqrt(2.0) * erfcinv(eps)
    gain = np.sqrt(eta * t_g / quadratures)
    noise = 1.0 + eta * t_g * xi / quadratures + v_el
    gain_min = np.maximum(gain - z * np.sqrt(noise / (m * v_a)), 0.0)
    noise_max = noise + z * noise * np.sqrt(2.0) / np.sqrt(m)
    with np.errstate(divide="ignore", invalid="ignore"):
        t_min = quadratures * gain_min**2 / eta
        xi_max = quadratures * (noise_max - 1.0 - v_el) / (eta * t_min)
        chi = holevo_bound(t_min, v_a, xi_max, eta, v_el, params.detection)
    info = mutual_information(t_g, v_a, xi, eta, v_el, params.detection)
    delta = 7.0 * np.sqrt(np.log2(2.0 / eps) / n_key) + 2.0 / n_key * np.log2(1.0 / eps)
    per_symbol = n_key / n_total * (grid(params.beta) * info - chi - delta)
    per_symbol = np.where(t_min > 0, np.nan_to_num(per_symbol, nan=0.0), 0.0)
    best = np.max(np.maximum(per_symbol, 0.0), axis=-1)
    return np.asarray(np.multiply(params.rep_rate_hz, best), dtype=np.float64)
