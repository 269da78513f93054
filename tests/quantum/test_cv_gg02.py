"""GG02 CV-QKD: the closed forms against an independent covariance-matrix computation."""

from __future__ import annotations

import numpy as np
import pytest

from qkdnet.quantum.cv_gg02 import cv_skr, holevo_bound, key_per_symbol, mutual_information
from qkdnet.quantum.devices import CV_DEVICE_TYPES, device_type
from qkdnet.quantum.entropy import thermal_entropy
from qkdnet.quantum.params import CVParams, Detection

# --- an independent computation, built from covariance matrices ---------------------------


def _omega(modes: int) -> np.ndarray:
    return np.kron(np.eye(modes), np.array([[0.0, 1.0], [-1.0, 0.0]]))


def _symplectic_eigenvalues(gamma: np.ndarray) -> np.ndarray:
    """Moduli of the eigenvalues of i Omega gamma, one per mode."""
    ev = np.sort(np.abs(np.linalg.eigvals(1j * _omega(gamma.shape[0] // 2) @ gamma)))
    return ev[::2]


def _entropy(gamma: np.ndarray) -> float:
    return float(np.sum(thermal_entropy(_symplectic_eigenvalues(gamma))))


def _two_mode_squeezed(v: float) -> np.ndarray:
    z = np.diag([1.0, -1.0])
    c = np.sqrt(v**2 - 1.0)
    return np.block([[v * np.eye(2), c * z], [c * z, v * np.eye(2)]])


def _beam_splitter(eta: float) -> np.ndarray:
    s, r = np.sqrt(eta) * np.eye(2), np.sqrt(1.0 - eta) * np.eye(2)
    return np.block([[s, r], [-r, s]])


def holevo_from_covariance(
    t: float, v_a: float, xi: float, eta: float, v_el: float, detection: Detection,
    xi_bob: float = 0.0,
) -> tuple[float, float]:
    """(I_AB, chi_BE) from the entanglement-based picture: an EPR pair A-B of variance V,
    B sent through a lossy noisy channel, Bob's detector modelled as a beam splitter of
    transmittance eta mixing in one half (F0) of an EPR pair F0-G whose variance gives the
    electronic noise. Eve purifies A, B; S(E|b) = S(A F G | b).

    The channel output B has variance T (V + xi) + 1 - T + xi_bob: ``xi`` enters with the
    signal and is attenuated by the channel, ``xi_bob`` is added at the output as it is."""
    v = v_a + 1.0
    ab = _two_mode_squeezed(v)
    channel = np.diag([1.0, 1.0, np.sqrt(t), np.sqrt(t)])
    ab = channel @ ab @ channel.T
    ab[2:, 2:] += (1.0 - t + t * xi + xi_bob) * np.eye(2)
    s_ab = _entropy(ab)

    split = 1.0 if detection == "homodyne" else 2.0
    v_noise = 1.0 + split * v_el / (1.0 - eta)
    # modes in order A, B, F0, G
    full = np.zeros((8, 8))
    full[:4, :4] = ab
    full[4:, 4:] = _two_mode_squeezed(v_noise)
    mix = np.eye(8)
    mix[2:6, 2:6] = _beam_splitter(eta)  # (B, F0) -> (B', F)
    full = mix @ full @ mix.T

    rest = [0, 1, 4, 5, 6, 7]  # A, F, G
    g_rest = full[np.ix_(rest, rest)]
    g_b = full[2:4, 2:4]
    sigma = full[np.ix_(rest, [2, 3])]
    if detection == "homodyne":
        conditional = g_rest - sigma @ np.diag([1.0 / g_b[0, 0], 0.0]) @ sigma.T
        # Alice's heterodyne on A prepares the coherent state she sent: condition B on it.
        v_b, v_b_given_a = g_b[0, 0], g_b[0, 0] - full[2, 0] ** 2 / (full[0, 0] + 1)
        i_ab = 0.5 * np.log2(v_b / v_b_given_a)
    else:
        conditional = g_rest - sigma @ np.linalg.inv(g_b + np.eye(2)) @ sigma.T
        v_b, v_b_given_a = g_b[0, 0] + 1.0, g_b[0, 0] + 1.0 - full[2, 0] ** 2 / (full[0, 0] + 1)
        i_ab = np.log2(v_b / v_b_given_a)
    return float(i_ab), s_ab - _entropy(conditional)


# --- the tests -----------------------------------------------------------------------------

CASES = [
    (t, v_a, xi, eta, v_el, det)
    for det, eta, v_el in (("heterodyne", 0.43, 0.2), ("homodyne", 0.6, 0.13))
    for t in (0.9, 0.5, 0.1, 0.02)
    for v_a, xi in ((4.0, 0.02), (10.0, 0.05), (2.0, 0.0))
]


@pytest.mark.parametrize(("t", "v_a", "xi", "eta", "v_el", "detection"), CASES)
def test_closed_forms_match_covariance_matrix_computation(
    t: float, v_a: float, xi: float, eta: float, v_el: float, detection: Detection
) -> None:
    """I_AB and chi_BE from the papers' closed forms equal the symplectic-eigenvalue
    computation on the full covariance matrix to 1e-6."""
    i_ref, chi_ref = holevo_from_covariance(t, v_a, xi, eta, v_el, detection)
    args = (t, v_a, xi, eta, v_el, detection)
    assert float(mutual_information(*args)) == pytest.approx(i_ref, abs=1e-6)
    assert float(holevo_bound(*args)) == pytest.approx(chi_ref, abs=1e-6)


OUTPUT_CASES = [
    (t, xi, xi_bob, det)
    for det in ("heterodyne", "homodyne")
    for t in (0.5, 0.1, 0.03)
    for xi, xi_bob in ((0.02, 5e-4), (0.0, 2e-3), (0.05, 1e-4))
]


@pytest.mark.parametrize(("t", "xi", "xi_bob", "detection"), OUTPUT_CASES)
def test_rate_with_noise_at_bobs_side_matches_covariance_matrix_computation(
    t: float, xi: float, xi_bob: float, detection: Detection
) -> None:
    """With excess noise split between the channel input and Bob's side, the model's key
    per symbol equals beta I_AB - chi_BE of a covariance matrix built with the noise added
    at the channel output, to 1e-6."""
    device = device_type("VI" if detection == "heterodyne" else "VII")
    params = device.params.replace(xi=xi, xi_bob=xi_bob)
    assert isinstance(params, CVParams)
    i_ref, chi_ref = holevo_from_covariance(
        t, float(params.v_a), xi, float(params.eta), float(params.v_el), detection, xi_bob)
    expected = float(params.beta) * i_ref - chi_ref
    assert float(key_per_symbol(t, params)) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("name", CV_DEVICE_TYPES)
def test_noise_at_bobs_side_ends_the_reach_where_deployed_systems_end(name: str) -> None:
    """With the default noise at Bob's side the asymptotic rate is zero by 25 dB and
    positive at 15 dB; with it set to 0 (input-referred only) it is still positive at 60 dB."""
    device = device_type(name)
    assert float(cv_skr(15.0, device.params)) > 0  # type: ignore[arg-type]
    assert float(cv_skr(25.0, device.params)) == 0  # type: ignore[arg-type]
    input_only = device.params.replace(xi_bob=0.0)
    assert float(cv_skr(60.0, input_only)) > 0  # type: ignore[arg-type]


def test_heterodyne_gives_more_information_than_homodyne_per_symbol() -> None:
    """Measuring both quadratures gives Bob more mutual information at the same channel."""
    het = mutual_information(0.3, 4.0, 0.02, 0.6, 0.1, "heterodyne")
    hom = mutual_information(0.3, 4.0, 0.02, 0.6, 0.1, "homodyne")
    assert het > hom


def test_more_excess_noise_shortens_the_reach() -> None:
    """Rate is zero sooner when the channel adds more excess noise."""
    loss = np.linspace(0.0, 30.0, 301)
    quiet = cv_skr(loss, CVParams(xi=0.01, xi_bob=0.0))
    noisy = cv_skr(loss, CVParams(xi=0.08, xi_bob=0.0))
    assert np.all(noisy <= quiet)
    assert loss[noisy > 0].max() < loss[quiet > 0].max()


def test_more_noise_at_bobs_side_shortens_the_reach() -> None:
    """Rate is zero sooner when more noise is added at the channel output."""
    loss = np.linspace(0.0, 30.0, 301)
    quiet = cv_skr(loss, CVParams(xi_bob=2e-4))
    noisy = cv_skr(loss, CVParams(xi_bob=2e-3))
    assert np.all(noisy <= quiet)
    assert loss[noisy > 0].max() < loss[quiet > 0].max()
