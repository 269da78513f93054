"""The quantum layer: QKD device types and the physics of their secure key rates.

Everything here is a pure function of numbers and numpy arrays: give it channel losses (dB)
and parameter sets (scalars or per-link arrays) and it returns key rates (bit/s).

>>> from qkdnet.quantum import device_type, skr
>>> round(float(skr(device_type("I"), 18.61)))  # bit/s at the backbone's mean loss
73937
"""

from qkdnet.quantum.channel import fibre_loss_db, transmittance
from qkdnet.quantum.devices import (
    BACKBONE_TYPES,
    CATALOGUE,
    METRO_TYPES,
    DeviceType,
    device_type,
    device_types,
)
from qkdnet.quantum.field import FieldRange, draw_field_params, field_ranges, pessimistic_params
from qkdnet.quantum.finite_key import cv_finite_skr, decoy_bb84_finite_skr
from qkdnet.quantum.params import CVParams, DecoyBB84Params, ProtocolParams
from qkdnet.quantum.plob import plob_bits_per_use, plob_skr
from qkdnet.quantum.rates import plob, skr
from qkdnet.quantum.reach import loss_at_rate, max_tolerable_loss, minimum_block_size

__all__ = [
    "BACKBONE_TYPES",
    "CATALOGUE",
    "METRO_TYPES",
    "CVParams",
    "DecoyBB84Params",
    "DeviceType",
    "FieldRange",
    "ProtocolParams",
    "cv_finite_skr",
    "decoy_bb84_finite_skr",
    "device_type",
    "device_types",
    "draw_field_params",
    "fibre_loss_db",
    "field_ranges",
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
