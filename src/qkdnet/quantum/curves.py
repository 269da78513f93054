"""Secure key rate against channel loss per device type, as the paper's Fig. 3 and Fig. 4
plot it: ideal calibration, the pessimistic end of the field spread, and the PLOB bound.
:mod:`qkdnet.figures.skr_curves` draws them."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from qkdnet.quantum.devices import device_type
from qkdnet.quantum.field import pessimistic_params
from qkdnet.quantum.plob import plob_skr
from qkdnet.quantum.rates import skr


def skr_curves(types: Sequence[str], losses: np.ndarray) -> list[dict[str, float | str]]:
    """Per type and loss (dB), the ideal and pessimistic-field SKR and the PLOB bound at
    the type's repetition rate (all bit/s), one row each."""
    rows: list[dict[str, float | str]] = []
    for name in types:
        device = device_type(name)
        ideal = skr(device, losses)
        worst = skr(device, losses, pessimistic_params(device))
        bound = plob_skr(losses, device.rep_rate_hz)
        rows.extend(
            {"type": name, "loss_db": float(x), "skr_ideal_bps": float(a),
             "skr_field_worst_bps": float(w), "plob_bps": float(b)}
            for x, a, w, b in zip(losses, ideal, worst, bound, strict=True)
        )
    return rows
