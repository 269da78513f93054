"""GG02 Gaussian-modulated coherent-state CV-QKD: reverse reconciliation, collective
attacks, trusted detector noise (types VI and VII).

Homodyne: Lodewyck et al., PRA 76, 042305 (2007). Heterodyne: Fossier et al., J. Phys. B 42,
114014 (2009). Noise in shot-noise units (SNU). All functions broadcast over numpy arrays.

The closed forms take the excess noise ``xi`` referred to the channel input. A link's
untrusted noise is partly added at Bob's side and does not scale with the transmittance T
(:class:`~qkdnet.quantum.params.CVParams`); :func:`input_excess_noise` refers it to the
input, xi + xi_bob / T, before the closed forms are evaluated.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from qkdnet.quantum.channel import transmittance
from qkdnet.quantum.entropy import thermal_entropy
from qkdnet.quantum.params import CVParams, Detection

FloatArray = NDArray[np.float64]


def detector_noise(eta: ArrayLike, v_el: ArrayLike, detection: Detection) -> FloatArray:
    """chi_det: the trusted detector's noise referred to its input (SNU)."""
    eta_a, v_el_a = np.asarray(eta, dtype=np.float64), np.asarray(v_el, dtype=np.float64)
    if detection == "homodyne":
        return (1.0 + v_el_a) / eta_a - 1.0
    return (2.0 - eta_a + 2.0 * v_el_a) / eta_a


def input_excess_noise(t: ArrayLike, params: CVParams) -> FloatArray:
    """The link's excess noise referred to the channel input (SNU) at transmittance ``t``:
    the input-referred part plus the part added at Bob's side, divided by T."""
    t_a = np.asarray(t, dtype=np.float64)
    return np.asarray(np.add(params.xi, np.divide(params.xi_bob, t_a)), dtype=np.float64)


def mutual_information(
    t: ArrayLike, v_a: ArrayLike, xi: ArrayLike, eta: ArrayLike, v_el: ArrayLike,
    detection: Detection,
) -> FloatArray:
    """Alice-Bob mutual information I_AB in bits per symbol at channel transmittance ``t``."""
    t_a = np.asarray(t, dtype=np.float64)
    v = np.add(v_a, 1.0)
    chi_tot = 1.0 / t_a - 1.0 + np.asarray(xi) + detector_noise(eta, v_el, detection) / t_a
    info = np.log2((v + chi_tot) / (1.0 + chi_tot))
    return np.asarray(0.5 * info if detection == "homodyne" else info, dtype=np.float64)


def holevo_bound(
    t: ArrayLike, v_a: ArrayLike, xi: ArrayLike, eta: ArrayLike, v_el: ArrayLike,
    detection: Detection,
) -> FloatArray:
    """chi_BE: Eve's Holevo information on Bob's data (bits per symbol), from the
    symplectic eigenvalues of the Alice-Bob state and of Alice's state conditioned on Bob's
    measurement, the detector's noise trusted."""
    t_a = np.asarray(t, dtype=np.float64)
    v = np.add(v_a, 1.0)
    chi_line = 1.0 / t_a - 1.0 + np.asarray(xi)
    chi_d = detector_noise(eta, v_el, detection)
    chi_tot = chi_line + chi_d / t_a

    a = v**2 * (1.0 - 2.0 * t_a) + 2.0 * t_a + t_a**2 * (v + chi_line) ** 2
    b = t_a**2 * (v * chi_line + 1.0) ** 2
    sqrt_b = np.sqrt(b)
    denom = t_a * (v + chi_tot)
    if detection == "homodyne":
        c = (a * chi_d + v * sqrt_b + t_a * (v + chi_line)) / denom
        d = sqrt_b * (v + sqrt_b * chi_d) / denom
    else:
        c = (
            a * chi_d**2 + b + 1.0 + 2.0 * chi_d * (v * sqrt_b + t_a * (v + chi_line))
            + 2.0 * t_a * (v**2 - 1.0)
        ) / denom**2
        d = ((v + sqrt_b * chi_d) / denom) ** 2

    def eigenvalues(s: FloatArray, p: FloatArray) -> tuple[FloatArray, FloatArray]:
        root = np.sqrt(np.maximum(s**2 - 4.0 * p, 0.0))
        return np.sqrt((s + root) / 2.0), np.sqrt(np.maximum((s - root) / 2.0, 1.0))

    l1, l2 = eigenvalues(a, b)
    l3, l4 = eigenvalues(c, d)
    return np.asarray(
        thermal_entropy(l1) + thermal_entropy(l2) - thermal_entropy(l3) - thermal_entropy(l4),
        dtype=np.float64,
    )


def key_per_symbol(t: ArrayLike, params: CVParams) -> FloatArray:
    """beta I_AB - chi_BE in bits per symbol, before clipping at zero."""
    xi = input_excess_noise(t, params)
    args = (t, params.v_a, xi, params.eta, params.v_el, params.detection)
    return np.asarray(
        np.multiply(params.beta, mutual_information(*args)) - holevo_bound(*args),
        dtype=np.float64,
    )


def cv_skr(loss_db: ArrayLike, params: CVParams) -> FloatArray:
    """Asymptotic secure key rate (bit/s): R = f_sym (beta I_AB - chi_BE), clipped at zero."""
    per_symbol = key_per_symbol(transmittance(loss_db), params)
    return np.asarray(np.multiply(params.rep_rate_hz, np.maximum(per_symbol, 0.0)),
                      dtype=np.float64)
