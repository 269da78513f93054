"""Field parameters: how deployed links differ from the ideal calibration.

The paper reports, across CN-QCN's DV links, intrinsic QBER 0.5–2%, dark counts 600–1000 Hz
and error-correction inefficiency 1.2–2. It gives no spread for the CV links; the project
assumes excess noise 0.02–0.05 SNU and reconciliation efficiency 0.90–0.95 (stated in the
README). Each parameter is drawn uniformly over its range; the rates fall monotonically in
every one of them, so the ideal corner and the pessimistic corner bound any draw.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qkdnet.quantum.devices import DeviceType
from qkdnet.quantum.params import CVParams, ProtocolParams


@dataclass(frozen=True)
class FieldRange:
    """The interval a field parameter is drawn from; ``best`` gives the higher key rate."""

    name: str
    best: float
    worst: float


DV_FIELD = (
    FieldRange("e_d", 0.005, 0.02),
    FieldRange("dark_count_hz", 600.0, 1000.0),
    FieldRange("f_ec", 1.2, 2.0),
)
CV_FIELD = (
    FieldRange("xi", 0.02, 0.05),
    FieldRange("beta", 0.95, 0.90),
)


def field_ranges(device: DeviceType) -> tuple[FieldRange, ...]:
    """The field spread that applies to ``device``'s protocol."""
    return CV_FIELD if isinstance(device.params, CVParams) else DV_FIELD


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
        low, high = sorted((r.best, r.worst))
        value = rng.uniform(low, high, size)
        draws[r.name] = value if size is not None else float(value)
    return device.params.replace(**draws)
