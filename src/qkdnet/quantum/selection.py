"""Which device types, with which parameters: the rules behind ``qkdnet skr`` and ``qkdnet
reach`` for choosing types, the field corner and parameter overrides, and for refusing a
finite-key block too small to give any key."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from qkdnet.errors import ParameterError
from qkdnet.quantum.devices import DeviceType, device_types
from qkdnet.quantum.field import pessimistic_params
from qkdnet.quantum.params import ProtocolParams
from qkdnet.quantum.reach import minimum_block_size


def parse_overrides(settings: Sequence[str], devices: Sequence[DeviceType]
                    ) -> dict[str, dict[str, Any]]:
    """``name=value`` settings split per device type; a name must belong to at least one of
    the selected types (it is applied to those that have it)."""
    per_device: dict[str, dict[str, Any]] = {d.name: {} for d in devices}
    for setting in settings:
        name, sep, raw = setting.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ParameterError("--set", setting, "expected name=value, e.g. mu=0.6")
        takers = [d for d in devices if name in d.params.names()]
        if not takers:
            known = sorted({n for d in devices for n in d.params.names()})
            raise ParameterError("--set", setting, "unknown parameter; known: " + ", ".join(known))
        value: Any = raw.strip()
        if name != "detection":
            try:
                value = float(value)
            except ValueError:
                raise ParameterError(name, raw, "must be a number") from None
        for d in takers:
            per_device[d.name][name] = value
    return per_device


def select_devices(type_spec: str, field: bool, settings: Sequence[str] = ()
                   ) -> list[tuple[DeviceType, ProtocolParams]]:
    """Device types named in ``type_spec`` (comma-separated, or ``all``) with their
    parameters: the calibration (or, with ``field``, the pessimistic field corner), then
    the ``name=value`` overrides."""
    devices = device_types(type_spec.split(","))
    overrides = parse_overrides(settings, devices)
    return [(d, (pessimistic_params(d) if field else d.params).replace(**overrides[d.name]))
            for d in devices]


def check_block_size(device: DeviceType, params: ProtocolParams, block: float | None,
                     epsilon: float) -> None:
    """ParameterError if a finite-key ``block`` (sifted bits, or symbols for CV) is too
    small for ``device`` to give any key at security parameter ``epsilon``."""
    if block is None:
        return
    need = minimum_block_size(device, params, epsilon)
    if block < need:
        unit = "symbols" if device.is_cv else "sifted bits"
        raise ParameterError("--block-size", block,
                             f"too small for any key with type {device.name}: "
                             f"needs at least {need:.3g} {unit}")
