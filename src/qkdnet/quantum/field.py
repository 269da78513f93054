"""Field parameters: how deployed links differ from the ideal calibration.

The spreads are the network's record of its devices (:mod:`qkdnet.topology.device_types`);
here they meet the device parameters. Each parameter is drawn uniformly over its range; the
rates fall monotonically in every one of them, so the ideal corner and the pessimistic
corner bound any draw.
"""

from __future__ import annotations

import numpy as np

from qkdnet.quantum.devices import DeviceType
from qkdnet.quantum.params import ProtocolParams
from qkdnet.topology.device_types import CV_FIELD, DV_FIELD, FieldRange, field_spread

__all__ = ["CV_FIELD", "DV_FIELD", "FieldRange", "draw_field_params", "field_ranges",
           "pessimistic_params"]


def field_ranges(device: DeviceType) -> tuple[FieldRange, ...]:
    """The field spread that applies to ``device``'s protocol."""
    return field_spread(device.name)


def pessimistic_params(device: DeviceType) -> ProtocolParams:
    """``device``'s parameters with every field parameter at its worst end."""
    return device.params.replace(**{r.name: r.worst for r in field_ranges(device)})


def draw_field_params(
    device: DeviceType, seed: int | np.random.Generator, size: int | None = None
) -> ProtocolParams:
    """Field parameters drawn uniformly from the field spread, reproducibly from ``seed``.

    With ``size`` every field parameter is an array of that many draws (one per link);
    without, a single draw. Parameters outside the field spread keep ``device``'s values.
    """
    rng = np.random.default_rng(seed)
    draws: dict[str, float | np.ndarray] = {}
    for r in field_ranges(device):
        value = rng.uniform(r.low, r.high, size)
        draws[r.name] = value if size is not None else float(value)
    return device.params.replace(**draws)
