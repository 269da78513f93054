"""What the network records about its QKD devices: the type names and the spread of field
parameters deployed links show. The physics behind the types is in :mod:`qkdnet.quantum`,
which builds on these names and ranges.

The paper reports, across CN-QCN's DV links, intrinsic QBER 0.5–2%, dark counts 600–1000 Hz
and error-correction inefficiency 1.2–2. It gives no spread for the CV links; the project
assumes excess noise 0.02–0.05 SNU and reconciliation efficiency 0.90–0.95.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

#: The seven CN-QCN device types: I–IV on the backbone, V–VII in metro networks.
DEVICE_TYPES = ("I", "II", "III", "IV", "V", "VI", "VII")
BACKBONE_DEVICE_TYPES = ("I", "II", "III", "IV")
METRO_DEVICE_TYPES = ("V", "VI", "VII")
#: Continuous-variable types; the others run decoy-state BB84.
CV_DEVICE_TYPES = ("VI", "VII")


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


def field_spread(device_type: str) -> tuple[FieldRange, ...]:
    """The field spread that applies to ``device_type``'s protocol family."""
    return CV_FIELD if device_type in CV_DEVICE_TYPES else DV_FIELD


def draw_link_fields(
    device_types: Sequence[str], rng: np.random.Generator
) -> list[Mapping[str, float]]:
    """One read-only field-parameter set per link, uniform over its type's spread (drawn
    in bulk, so a network of any size costs a few array operations)."""
    u = rng.random((len(device_types), max(len(DV_FIELD), len(CV_FIELD))))
    rows: dict[bool, list[list[float]]] = {}
    for cv, spread in ((False, DV_FIELD), (True, CV_FIELD)):
        low = np.array([r.low for r in spread])
        high = np.array([r.high for r in spread])
        rows[cv] = (low + (high - low) * u[:, : len(spread)]).tolist()
    names = {False: [r.name for r in DV_FIELD], True: [r.name for r in CV_FIELD]}
    return [MappingProxyType(dict(zip(names[cv], rows[cv][i], strict=True)))
            for i, cv in enumerate(t in CV_DEVICE_TYPES for t in device_types)]
