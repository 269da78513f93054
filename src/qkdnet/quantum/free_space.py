"""The satellite-to-ground (downlink) free-space channel and the secure key of a pass.

Channel loss (dB) against range and elevation, the product of:

- diffraction: a Gaussian beam leaving the transmitter with waist w0 = D_tx / 2 spreads at
  the far-field half-angle theta = sqrt((2 lambda / (pi D_tx))^2 + theta_x^2), where the
  extra half-angle theta_x stands for the payload's real, wider-than-diffraction divergence
  (optics, jitter); at range L its 1/e^2 radius is w = sqrt(w0^2 + (L theta)^2) and a
  receiving telescope of diameter D_rx collects 1 - exp(-D_rx^2 / (2 w^2)) of it;
- the atmosphere: the clear-sky zenith transmission raised to the air mass of the elevation
  (Kasten and Young, Appl. Opt. 28, 4735 (1989)); a downlink's turbulence loss is left out
  (the beam crosses the turbulent layer last, where it is already metres wide);
- pointing loss and the two telescopes' optics, as fixed dB.

The receiver's internal loss and detector efficiency are those of the BB84 parameters, not
part of the channel. The key: decoy-state BB84 (:mod:`qkdnet.quantum.decoy_bb84`,
:mod:`qkdnet.quantum.finite_key`) with the satellite's source and the ground receiver's
background. A pass is one finite block: its counts are the sums over the pass, and since
every gain and error count is linear in the transmittance while eta mu << 1, the block is
that of a constant channel at the pass's mean transmittance over the collection window;
the window is the part of the pass above an elevation threshold, chosen per pass (the
minimum elevation or higher) to give the most key.

Calibration (ASSUMED where the papers give no number; anchors: Li et al., Nature 640, 47
(2025), arXiv:2408.10994, Jinan-1; Liao et al., Nature 549, 43 (2017), Micius):

- source: 250 M signal pulses/s (Jinan-1's ~250 million signal photons per second):
  500 MHz with signal probability 0.5 (decoy 0.25, vacuum 0.25); mu 0.8, nu 0.1 and the
  vacuum decoy, Micius's intensities;
- ASSUMED optics: 850 nm, a 0.10 m transmitter, extra divergence half-angle 7 urad (the
  beam ~9 urad half-angle, ~18 urad full: microsatellite class), a 0.30 m portable ground
  telescope, zenith transmission 0.85, pointing 1 dB, transmitter and receiver optics
  0.5 dB each; the channel is then ~29 dB at zenith (500 km) and ~43 dB at 10 deg
  elevation (1,700 km), within the 30-45 dB the anchors give at the edge of a pass;
- ASSUMED receiver: Si avalanche photodiodes, efficiency 0.5, 4 detectors, 6 dB internal
  loss (analyser, filters, fibre coupling), 20 Hz dark plus night-sky counts per detector
  in a 0.5 ns gate, 0.5% polarisation error, f_EC 1.2; finite key at epsilon 1e-10.
  The receiver loss and background were set (the two free knobs) so that the best night
  pass of a week gives ~0.6 Mbit.

The best night passes then give ~0.6 Mbit (the 0.59 Mbit of Li et al.), passes culminating
at 15-25 deg tens of kbit, grazing ones (under ~12 deg) nothing: a block too small for the
finite-key bounds (see the README's satellite section for the figures over a week).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from qkdnet.errors import ParameterError
from qkdnet.quantum.decoy_bb84 import gain_and_error, overall_transmittance
from qkdnet.quantum.finite_key import DEFAULT_EPSILON, decoy_bb84_finite_skr
from qkdnet.quantum.params import DecoyBB84Params

FloatArray = NDArray[np.float64]

#: Jinan-1-like source and ground receiver (see the module docstring for where from).
SATELLITE_BB84 = DecoyBB84Params(
    rep_rate_hz=500e6, eta_d=0.5, n_detectors=4.0, receiver_loss_db=6.0, e_d=0.005,
    dark_count_hz=20.0, detection_window_s=0.5e-9, f_ec=1.2, mu=0.8, nu=0.1,
    p_mu=0.5, p_nu=0.25, p_vac=0.25, q=0.5,
)

#: Elevations above the minimum (deg) tried as the start of a pass's collection window.
WINDOW_RAISES_DEG = np.array([0.0, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0])


@dataclass(frozen=True, slots=True)
class FreeSpaceLink:
    """A downlink's optics and atmosphere (lengths in m, angles in rad, losses in dB)."""

    wavelength_m: float = 850e-9
    tx_aperture_m: float = 0.10
    extra_divergence_rad: float = 7e-6
    rx_aperture_m: float = 0.30
    zenith_transmission: float = 0.85
    pointing_loss_db: float = 1.0
    tx_optics_loss_db: float = 0.5
    rx_optics_loss_db: float = 0.5

    def __post_init__(self) -> None:
        for name in ("wavelength_m", "tx_aperture_m", "rx_aperture_m"):
            if not getattr(self, name) > 0:
                raise ParameterError(name, getattr(self, name), "must be > 0 m")
        if not self.extra_divergence_rad >= 0:
            raise ParameterError("extra_divergence_rad", self.extra_divergence_rad,
                                 "must be >= 0 rad")
        if not 0 < self.zenith_transmission <= 1:
            raise ParameterError("zenith_transmission", self.zenith_transmission,
                                 "must be in (0, 1]")
        for name in ("pointing_loss_db", "tx_optics_loss_db", "rx_optics_loss_db"):
            if not getattr(self, name) >= 0:
                raise ParameterError(name, getattr(self, name), "must be >= 0 dB")

    @property
    def divergence_rad(self) -> float:
        """Far-field half-angle of the beam (1/e^2 radius, rad)."""
        diffraction = 2.0 * self.wavelength_m / (math.pi * self.tx_aperture_m)
        return math.hypot(diffraction, self.extra_divergence_rad)

    def geometric_transmittance(self, range_km: ArrayLike) -> FloatArray:
        """Fraction of the beam the receiving telescope collects at ``range_km`` (km)."""
        w0 = self.tx_aperture_m / 2.0
        w2 = w0**2 + (np.asarray(range_km, dtype=np.float64) * 1e3 * self.divergence_rad) ** 2
        return np.asarray(-np.expm1(-self.rx_aperture_m**2 / (2.0 * w2)), dtype=np.float64)

    def atmospheric_transmittance(self, elevation_deg: ArrayLike) -> FloatArray:
        """Clear-sky transmission at ``elevation_deg`` (deg) by the Kasten-Young air mass."""
        el = np.clip(np.asarray(elevation_deg, dtype=np.float64), 0.0, 90.0)
        airmass = 1.0 / (np.sin(np.radians(el)) + 0.50572 * (el + 6.07995) ** -1.6364)
        return np.asarray(self.zenith_transmission**airmass, dtype=np.float64)

    def loss_db(self, range_km: ArrayLike, elevation_deg: ArrayLike) -> FloatArray:
        """Channel loss (dB) from the satellite's source to the ground receiver's input."""
        t = self.geometric_transmittance(range_km) * self.atmospheric_transmittance(
            elevation_deg)
        fixed = self.pointing_loss_db + self.tx_optics_loss_db + self.rx_optics_loss_db
        return np.asarray(-10.0 * np.log10(t) + fixed, dtype=np.float64)


def block_key_bits(
    loss_db: ArrayLike, duration_s: ArrayLike, params: DecoyBB84Params = SATELLITE_BB84,
    epsilon: float = DEFAULT_EPSILON,
) -> FloatArray:
    """Secure key (bits) of one finite block sent for ``duration_s`` (s) through a channel
    of (mean) loss ``loss_db`` (dB); broadcasts. Blocks of under one detection give 0."""
    loss = np.asarray(loss_db, dtype=np.float64)
    duration = np.asarray(duration_s, dtype=np.float64)
    eta = overall_transmittance(loss, params)
    sifted_per_pulse = sum(
        np.multiply(params.q, p) * gain_and_error(eta, i, params.y0, params.e_d)[0]
        for p, i in ((params.p_mu, params.mu), (params.p_nu, params.nu), (params.p_vac, 0.0))
    )
    block = duration * np.multiply(params.rep_rate_hz, sifted_per_pulse)
    usable = block >= 1.0
    rate = decoy_bb84_finite_skr(loss, params, np.where(usable, block, 1.0), epsilon)
    return np.asarray(np.where(usable, rate * duration, 0.0), dtype=np.float64)


def pass_key_bits(
    link: FreeSpaceLink, range_km: FloatArray, elevation_deg: FloatArray, usable: FloatArray,
    step_s: float, min_elevation_deg: float, params: DecoyBB84Params = SATELLITE_BB84,
    epsilon: float = DEFAULT_EPSILON,
) -> float:
    """Secure key (bits) of one pass sampled every ``step_s`` (s): ``usable`` marks the
    samples where key may be made (night, above the minimum elevation). The collection
    window starts at the threshold of :data:`WINDOW_RAISES_DEG` that gives the most key."""
    thresholds = min_elevation_deg + WINDOW_RAISES_DEG
    mask = (elevation_deg[None, :] >= thresholds[:, None]) & usable.astype(bool)[None, :]
    samples = mask.sum(axis=1)
    if not samples.any():
        return 0.0
    t = link.geometric_transmittance(range_km) * link.atmospheric_transmittance(elevation_deg)
    mean_t = np.where(samples > 0, (mask * t).sum(axis=1) / np.maximum(samples, 1), 1.0)
    fixed = link.pointing_loss_db + link.tx_optics_loss_db + link.rx_optics_loss_db
    keys = block_key_bits(-10.0 * np.log10(mean_t) + fixed, samples * step_s, params, epsilon)
    return float(np.max(np.where(samples > 0, keys, 0.0)))
