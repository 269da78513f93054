"""The quantum layer, the lowest: QKD device types, the physics of their secure key rates,
and the device adapters that hand key blocks to the Key Managers.

The physics is pure functions of numbers and numpy arrays: give it channel losses (dB) and
parameter sets (scalars or per-link arrays) and it returns key rates (bit/s). A network's
link reaches it through :class:`LinkSpec`; randomness comes from a seed or from the driver.

>>> from qkdnet.quantum import device_type, skr
>>> round(float(skr(device_type("I"), 18.61)))  # bit/s at the backbone's mean loss
73937
"""

from qkdnet.quantum.channel import fibre_loss_db, transmittance
from qkdnet.quantum.devices import (
    BACKBONE_DEVICE_TYPES,
    CATALOGUE,
    CV_DEVICE_TYPES,
    DEVICE_TYPES,
    METRO_DEVICE_TYPES,
    DeviceType,
    device_type,
    device_types,
)
from qkdnet.quantum.field import (
    FIELD_PARAMETERS,
    FieldRange,
    draw_field_params,
    draw_link_fields,
    field_ranges,
    pessimistic_params,
)
from qkdnet.quantum.finite_key import cv_finite_skr, decoy_bb84_finite_skr
from qkdnet.quantum.link_rate import LinkSpec, link_skr_bps, links_skr_bps
from qkdnet.quantum.params import CVParams, DecoyBB84Params, ProtocolParams
from qkdnet.quantum.plob import plob_bits_per_use, plob_skr
from qkdnet.quantum.rates import plob, skr
from qkdnet.quantum.reach import loss_at_rate, max_tolerable_loss, minimum_block_size

__all__ = [
    "BACKBONE_DEVICE_TYPES",
    "CATALOGUE",
    "CV_DEVICE_TYPES",
    "DEVICE_TYPES",
    "FIELD_PARAMETERS",
    "METRO_DEVICE_TYPES",
    "CVParams",
    "DecoyBB84Params",
    "DeviceType",
    "FieldRange",
    "LinkSpec",
    "ProtocolParams",
    "cv_finite_skr",
    "decoy_bb84_finite_skr",
    "device_type",
    "device_types",
    "draw_field_params",
    "draw_link_fields",
    "fibre_loss_db",
    "field_ranges",
    "link_skr_bps",
    "links_skr_bps",
    "loss_at_rate",
    "max_tolerable_loss",
    "minimum_block_size",
    "pessimistic_params",
    "plob",
    "plob_bits_per_use",
    "plob_skr",
    "skr",
    "transmittance",
]
