"""Field parameters: how deployed links differ from the ideal calibration.

The paper reports, across CN-QCN's DV links, intrinsic QBER 0.5–2%, dark counts 600–1000 Hz
and error-correction inefficiency 1.2–2. It gives no spread for the CV links; the project
assumes excess noise 0.02–0.05 SNU and reconciliation efficiency 0.90–0.95.

Each parameter is drawn uniformly over its range; the rates fall monotonically in every one
of them, so the ideal corner and the pessimistic corner bound any draw. The network records
each link's draw (:func:`draw_link_fields`); the rate models apply it to the device's
calibration.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from qkdnet.quantum.devices import CV_DEVICE_TYPES, DeviceType
from qkdnet.quantum.params import ProtocolParams


@dataclass(frozen=True)
class FieldRange:
    """The interval a field parameter is drawn from; ``best`` gives the higher key rate."""

    name: str
    best: float
    worst: float

    @property
    def low(self) -> float:
        """The smaller end of the interval."""
        return min(self.best, self.worst)

    @property
    def high(self) -> float:
        """The larger end of the interval."""
        return max(self.best, self.worst)


DV_FIELD = (
    FieldRange("e_d", 0.005, 0.02),
    FieldRange("dark_count_hz", 600.0, 1000.0),
    FieldRange("f_ec", 1.2, 2.0),
)
CV_FIELD = (
    FieldRange("xi", 0.02, 0.05),
    FieldRange("beta", 0.95, 0.90),
)
#: Every field parameter a link may carry.
FIELD_PARAMETERS = tuple(r.name for r in DV_FIELD + CV_FIELD)


def field_ranges(device: DeviceType) -> tuple[FieldRange, ...]:
    """The field spread that applies to ``device``'s protocol family."""
    return CV_FIELD if device.is_cv else DV_FIELD


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


def draw_link_fields(
    device_types: Sequence[str], rng: np.random.Generator
) -> list[Mapping[str, float]]:
    """One read-only field-parameter set per link of the given device type names, uniform
    over its type's spread (drawn in bulk, so a network of any size costs a few array
    operations)."""
    u = rng.random((len(device_types), max(len(DV_FIELD), len(CV_FIELD))))
    rows: dict[bool, list[list[float]]] = {}
    for cv, spread in ((False, DV_FIELD), (True, CV_FIELD)):
        low = np.array([r.low for r in spread])
        high = np.array([r.high for r in spread])
        rows[cv] = (low + (high - low) * u[:, : len(spread)]).tolist()
    names = {False: [r.name for r in DV_FIELD], True: [r.name for r in CV_FIELD]}
    return [MappingProxyType(dict(zip(names[cv], rows[cv][i], strict=True)))
            for i, cv in enumerate(t in CV_DEVICE_TYPES for t in device_types)]
