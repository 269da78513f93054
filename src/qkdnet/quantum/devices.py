"""The seven QKD device types deployed in CN-QCN (Chen et al., npj Quantum Inf. 2025).

Types I–IV serve the backbone, V–VII the metro networks. Each type carries its protocol
parameters with the project's default calibration (physics.md); any parameter can be
overridden with :meth:`DeviceType.with_params`. The catalogue is the one record of the
types: the network (:mod:`qkdnet.topology`) names a link's device by its type name here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from qkdnet.errors import ParameterError
from qkdnet.quantum.params import CVParams, DecoyBB84Params, ProtocolParams

Domain = Literal["backbone", "metro"]


@dataclass(frozen=True)
class DeviceType:
    """One QKD device type: what the paper reports, and its calibrated parameters."""

    name: str
    domain: Domain
    protocol: str
    encoding: str
    detector: str
    params: ProtocolParams

    @property
    def is_cv(self) -> bool:
        """True for continuous-variable devices (types VI, VII)."""
        return isinstance(self.params, CVParams)

    @property
    def rep_rate_hz(self) -> float:
        """Pulse or symbol repetition rate (Hz) of the default calibration."""
        return float(self.params.rep_rate_hz)

    def with_params(self, **changes: Any) -> DeviceType:
        """This type with some parameters overridden (floats or per-link arrays)."""
        return dataclasses.replace(self, params=self.params.replace(**changes))


def _dv(rate: float, eta_d: float, detectors: int) -> DecoyBB84Params:
    return DecoyBB84Params(rep_rate_hz=rate, eta_d=eta_d, n_detectors=detectors)


CATALOGUE: dict[str, DeviceType] = {
    d.name: d
    for d in (
        DeviceType("I", "backbone", "decoy BB84", "polarisation, single laser",
                   "4 InGaAs/InP SPDs, 15%", _dv(625e6, 0.15, 4)),
        DeviceType("II", "backbone", "decoy BB84", "polarisation, 8 lasers",
                   "4 up-conversion SPDs, 20%", _dv(625e6, 0.20, 4)),
        DeviceType("III", "backbone", "decoy BB84", "polarisation, 8 lasers",
                   "4 InGaAs/InP SPDs, 10%", _dv(625e6, 0.10, 4)),
        DeviceType("IV", "backbone", "decoy BB84", "phase (Sagnac + AMZI / Faraday-Michelson)",
                   "2 SPDs, 15%", _dv(312.5e6, 0.15, 2)),
        DeviceType("V", "metro", "decoy BB84", "single laser",
                   "4 SPDs, 10%", _dv(40e6, 0.10, 4)),
        DeviceType("VI", "metro", "CV-QKD GG02", "Gaussian-modulated coherent states, local LO",
                   "heterodyne, eta 0.43, v_el 0.2 SNU",
                   CVParams(rep_rate_hz=125e6, detection="heterodyne", eta=0.43, v_el=0.2)),
        DeviceType("VII", "metro", "CV-QKD GG02",
                   "Gaussian-modulated coherent states, transmitted LO",
                   "homodyne, eta 0.6, v_el 0.13 SNU",
                   CVParams(rep_rate_hz=10e6, detection="homodyne", eta=0.6, v_el=0.13)),
    )
}

#: The type names in catalogue order: I-IV on the backbone, V-VII in metro networks.
DEVICE_TYPES = tuple(CATALOGUE)
BACKBONE_DEVICE_TYPES = tuple(n for n, d in CATALOGUE.items() if d.domain == "backbone")
METRO_DEVICE_TYPES = tuple(n for n, d in CATALOGUE.items() if d.domain == "metro")
#: Continuous-variable types; the others run decoy-state BB84.
CV_DEVICE_TYPES = tuple(n for n, d in CATALOGUE.items() if d.is_cv)
_ARABIC = {str(i): name for i, name in enumerate(CATALOGUE, start=1)}


def device_type(name: str) -> DeviceType:
    """The catalogue entry for ``name``: a roman numeral I–VII (any case) or 1–7."""
    key = name.strip().upper()
    key = _ARABIC.get(key, key)
    if key not in CATALOGUE:
        raise ParameterError("type", name, "device type must be one of " + ", ".join(DEVICE_TYPES))
    return CATALOGUE[key]


def device_types(names: Iterable[str]) -> list[DeviceType]:
    """Several catalogue entries; ``all`` selects the seven types in order."""
    selected: list[DeviceType] = []
    for name in names:
        if name.strip().lower() == "all":
            selected.extend(CATALOGUE.values())
        else:
            selected.append(device_type(name))
    return list({d.name: d for d in selected}.values())
