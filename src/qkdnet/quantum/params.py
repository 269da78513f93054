"""Parameter sets of the two protocol families, validated when built.

Every numeric field accepts a float or a numpy array; arrays broadcast against each other and
against the channel loss, so one call evaluates many links or many field draws at once.
A bad value raises :class:`~qkdnet.errors.ParameterError` naming the field and its range.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray

from qkdnet.errors import ParameterError

FloatArray = NDArray[np.float64]
Real = float | FloatArray
Detection = Literal["homodyne", "heterodyne"]


def _doc(text: str, default: Any) -> Any:
    return field(default=default, metadata={"doc": text})


def _as_real(value: ArrayLike) -> Real:
    if isinstance(value, (int, float, np.integer, np.floating)):
        return float(value)
    arr = np.asarray(value, dtype=np.float64)
    return float(arr) if arr.ndim == 0 else arr


def _require(name: str, value: ArrayLike, ok: ArrayLike, allowed: str) -> None:
    """Raise ParameterError for the first element of ``value`` where ``ok`` is false."""
    ok_arr = np.asarray(ok, dtype=bool)
    if ok_arr.all():
        return
    shape = np.broadcast_shapes(np.shape(value), ok_arr.shape)
    values = np.broadcast_to(np.asarray(value), shape)
    first_bad = values[~np.broadcast_to(ok_arr, shape)].flat[0]
    raise ParameterError(name, float(first_bad), allowed)


class _Params:
    """Shared behaviour: conversion of numeric fields, shape, replace, field docs."""

    protocol: ClassVar[str]
    _text_fields: ClassVar[frozenset[str]] = frozenset()

    def _convert_fields(self) -> None:
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            if f.name not in self._text_fields:
                object.__setattr__(self, f.name, _as_real(getattr(self, f.name)))

    @property
    def shape(self) -> tuple[int, ...]:
        """Broadcast shape of all array-valued fields (``()`` when all are scalars)."""
        shapes = [np.shape(getattr(self, n)) for n in self.names() if n not in self._text_fields]
        return np.broadcast_shapes(*shapes)

    @classmethod
    def names(cls) -> list[str]:
        """Field names, as accepted by :meth:`replace` and ``qkdnet skr --set``."""
        return [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]

    @classmethod
    def docs(cls) -> dict[str, str]:
        """One-line description (with unit) of every field."""
        return {f.name: f.metadata.get("doc", "") for f in dataclasses.fields(cls)}  # type: ignore[arg-type]

    def replace(self, **changes: Any) -> Self:
        """A copy with some fields changed; unknown names raise ParameterError."""
        for name in changes:
            if name not in self.names():
                raise ParameterError(
                    name, changes[name], f"unknown {self.protocol} parameter; known: "
                    + ", ".join(self.names())
                )
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


@dataclass(frozen=True)
class DecoyBB84Params(_Params):
    """Decoy-state BB84 with signal, weak decoy and vacuum intensities (types I–V).

    Defaults are the project's calibration of the paper's "ideal" curves (physics.md).
    """

    protocol: ClassVar[str] = "decoy-BB84"

    rep_rate_hz: Real = _doc("pulse repetition rate (Hz)", 625e6)
    eta_d: Real = _doc("single-photon detector efficiency (0-1]", 0.15)
    n_detectors: Real = _doc("number of single-photon detectors at the receiver", 4.0)
    receiver_loss_db: Real = _doc("receiver internal optical loss (dB)", 2.0)
    e_d: Real = _doc("intrinsic (misalignment) QBER [0, 0.5)", 0.005)
    dark_count_hz: Real = _doc("dark-count rate per detector (Hz)", 600.0)
    detection_window_s: Real = _doc("detection gate width (s)", 1e-9)
    f_ec: Real = _doc("error-correction inefficiency f_EC (>= 1)", 1.2)
    mu: Real = _doc("signal intensity (mean photons per pulse)", 0.5)
    nu: Real = _doc("weak-decoy intensity (mean photons per pulse, < mu)", 0.1)
    p_mu: Real = _doc("probability of sending the signal intensity", 0.75)
    p_nu: Real = _doc("probability of sending the weak decoy", 0.125)
    p_vac: Real = _doc("probability of sending the vacuum decoy", 0.125)
    q: Real = _doc("sifting factor: probability that the bases match", 0.5)

    def __post_init__(self) -> None:
        self._convert_fields()
        v = self
        _require("rep_rate_hz", v.rep_rate_hz, np.greater(v.rep_rate_hz, 0), "must be > 0 Hz")
        _require("eta_d", v.eta_d, (np.greater(v.eta_d, 0)) & (np.less_equal(v.eta_d, 1)),
                 "detector efficiency must be in (0, 1]")
        n = np.asarray(v.n_detectors)
        _require("n_detectors", n, (n >= 1) & (n == np.round(n)), "must be an integer >= 1")
        _require("receiver_loss_db", v.receiver_loss_db, np.greater_equal(v.receiver_loss_db, 0),
                 "must be >= 0 dB")
        _require("e_d", v.e_d, (np.greater_equal(v.e_d, 0)) & (np.less(v.e_d, 0.5)),
                 "intrinsic QBER must be in [0, 0.5)")
        _require("dark_count_hz", v.dark_count_hz, np.greater_equal(v.dark_count_hz, 0),
                 "must be >= 0 Hz")
        _require("detection_window_s", v.detection_window_s,
                 np.greater(v.detection_window_s, 0), "must be > 0 s")
        _require("dark_count_hz", v.dark_count_hz,
                 np.less(np.multiply(v.dark_count_hz, v.detection_window_s), 1),
                 "dark-count probability per gate (rate x window) must be < 1")
        _require("f_ec", v.f_ec, np.greater_equal(v.f_ec, 1), "must be >= 1 (Shannon limit)")
        _require("mu", v.mu, np.greater(v.mu, 0), "signal intensity must be > 0")
        _require("nu", v.nu, np.greater(v.nu, 0), "weak-decoy intensity must be > 0")
        _require("nu", v.nu, np.less(v.nu, v.mu), f"weak decoy must satisfy nu < mu (mu={v.mu})")
        for name in ("p_mu", "p_nu", "p_vac", "q"):
            p = getattr(v, name)
            _require(name, p, (np.greater(p, 0)) & (np.less_equal(p, 1)),
                     "probability must be in (0, 1]")
        total = np.add(np.add(v.p_mu, v.p_nu), v.p_vac)
        _require("p_mu+p_nu+p_vac", total, np.isclose(total, 1.0, rtol=0, atol=1e-9),
                 "sending probabilities must sum to 1")

    @property
    def receiver_transmittance(self) -> Real:
        """t_B: the receiver's internal transmittance (0-1)."""
        return np.power(10.0, -np.divide(self.receiver_loss_db, 10.0))

    @property
    def y0(self) -> Real:
        """Background yield per pulse: Y0 = 1 - (1 - p_d)^n_det, p_d = dark rate x window."""
        p_d = np.multiply(self.dark_count_hz, self.detection_window_s)
        return -np.expm1(np.multiply(self.n_detectors, np.log1p(-p_d)))


@dataclass(frozen=True)
class CVParams(_Params):
    """Gaussian-modulated coherent-state CV-QKD, GG02 with reverse reconciliation (types VI, VII).

    Noise is in shot-noise units (SNU). The untrusted excess noise has two parts, as the
    CV-QKD literature and field trials decompose it (Laudenbach et al., Adv. Quantum
    Technol. 1, 1800011 (2018)): ``xi``, referred to the channel input, which passes through
    the channel with the signal (modulation and phase-recovery noise); and ``xi_bob``, added
    at Bob's side, the channel output, which does not scale with the transmittance T (LO
    leakage, quantisation, Raman and crosstalk from co-propagating light, residual phase
    noise of the receiver). Referred to the input the total is ``xi + xi_bob / T``
    (:func:`qkdnet.quantum.cv_gg02.input_excess_noise`), so it grows with distance and the
    rate reaches zero at a finite loss. ``xi_bob = 0`` gives the constant, input-referred
    excess noise of the model before issue 15.

    Defaults (project calibration): ``xi`` 0.02 SNU and ``beta`` 0.95 as before;
    ``xi_bob`` 5e-4 SNU, chosen so that the asymptotic reach of types VI and VII (about 20
    dB) and their finite-key reach at 1e10 symbols (16-17 dB) lie where deployed and
    field-tested GG02 systems work: Jouguet et al., Nat. Photon. 7, 378 (2013), 80 km of
    fibre (about 16 dB) with finite-size blocks; "Long-distance CV-QKD over 100 km fiber
    with local local oscillator", arXiv:2305.08156 (2023), 15.4 dB. The record of Zhang et
    al., PRL 125, 010502 (2020), 202.81 km of ultra-low-loss fibre, takes reconciliation and
    noise well beyond these commercial metro types'.
    """

    protocol: ClassVar[str] = "CV-QKD GG02"
    _text_fields: ClassVar[frozenset[str]] = frozenset({"detection"})

    rep_rate_hz: Real = _doc("symbol rate (Hz)", 125e6)
    detection: Detection = _doc("homodyne or heterodyne", "heterodyne")
    v_a: Real = _doc("Alice's modulation variance V_A (SNU)", 4.0)
    eta: Real = _doc("detector quantum efficiency (0-1]", 0.43)
    v_el: Real = _doc("detector electronic noise (SNU)", 0.2)
    xi: Real = _doc("excess noise at the channel input, attenuated with the signal (SNU)", 0.02)
    xi_bob: Real = _doc("excess noise added at Bob's side, the channel output, not scaling "
                        "with T (SNU); 0 gives the input-referred model", 5e-4)
    beta: Real = _doc("reconciliation efficiency (0-1]", 0.95)

    def __post_init__(self) -> None:
        self._convert_fields()
        v = self
        if v.detection not in ("homodyne", "heterodyne"):
            raise ParameterError("detection", v.detection, "must be homodyne or heterodyne")
        _require("rep_rate_hz", v.rep_rate_hz, np.greater(v.rep_rate_hz, 0), "must be > 0 Hz")
        _require("v_a", v.v_a, np.greater(v.v_a, 0), "modulation variance must be > 0 SNU")
        _require("eta", v.eta, (np.greater(v.eta, 0)) & (np.less_equal(v.eta, 1)),
                 "detector efficiency must be in (0, 1]")
        _require("v_el", v.v_el, np.greater_equal(v.v_el, 0), "must be >= 0 SNU")
        _require("xi", v.xi, np.greater_equal(v.xi, 0), "must be >= 0 SNU")
        _require("xi_bob", v.xi_bob, np.greater_equal(v.xi_bob, 0), "must be >= 0 SNU")
        _require("beta", v.beta, (np.greater(v.beta, 0)) & (np.less_equal(v.beta, 1)),
                 "reconciliation efficiency must be in (0, 1]")


ProtocolParams = DecoyBB84Params | CVParams
