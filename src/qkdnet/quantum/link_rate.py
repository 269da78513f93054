"""The secure key rate a QKD-link delivers to its KM-link: one definition, used by the twin's
rate table, the device emulator and the live reports.

A link's rate is its device type's SKR at the link's loss, with the link's own field
parameters applied to the device's calibration, times its device pairs and its share of an
optical switch. The quantum layer knows a link only through :class:`LinkSpec`, which the
network's QKD-link record (:class:`qkdnet.topology.model.QKDLink`) satisfies, so physics
needs no network.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import numpy as np

from qkdnet.quantum.devices import device_type
from qkdnet.quantum.dynamics import CV_XI_PER_QBER, FloatArray
from qkdnet.quantum.rates import skr


class LinkSpec(Protocol):
    """What sets a QKD-link's key rate: device type name, loss (dB), field parameters
    (names of :data:`~qkdnet.quantum.field.FIELD_PARAMETERS`), device pairs sharing the
    span, and the fraction of time the devices serve this link."""

    @property
    def device_type(self) -> str: ...

    @property
    def loss_db(self) -> float: ...

    @property
    def field(self) -> Mapping[str, float]: ...

    @property
    def device_pairs(self) -> int: ...

    @property
    def time_share(self) -> float: ...


def links_skr_bps(links: Sequence[LinkSpec], extra_qber: Sequence[float] = (0.0,)
                  ) -> FloatArray:
    """Rates (bit/s) of ``links`` (rows) at each extra QBER (columns, fractions) the link
    dynamics add: excess noise for CV links, error rate for DV links. One vectorised
    evaluation per device type, so thousands of links cost a few array operations."""
    grid = np.asarray(extra_qber, dtype=float)
    rates = np.zeros((len(links), grid.size))
    by_type: dict[str, list[int]] = {}
    for i, lk in enumerate(links):
        by_type.setdefault(lk.device_type, []).append(i)
    for name, rows in by_type.items():
        device = device_type(name)
        chosen = [links[i] for i in rows]
        field = {key: np.array([[lk.field.get(key, getattr(device.params, key))]
                                for lk in chosen])
                 for key in {k for lk in chosen for k in lk.field}}
        disturbed, per_qber = ("xi", CV_XI_PER_QBER) if device.is_cv else ("e_d", 1.0)
        base = field.get(disturbed, np.full((len(rows), 1), getattr(device.params, disturbed)))
        field[disturbed] = base + per_qber * grid[None, :]
        loss = np.array([[lk.loss_db] for lk in chosen])
        scale = np.array([[lk.device_pairs * lk.time_share] for lk in chosen])
        rates[rows] = skr(device, loss, device.params.replace(**field)) * scale
    return rates


def link_skr_bps(link: LinkSpec) -> float:
    """The secure key rate (bit/s) ``link`` delivers to its KM-link, undisturbed."""
    return float(links_skr_bps([link])[0, 0])
