"""What a QKD device hands its Key Managers: the :class:`KeySource` interface a device
adapter offers and the :class:`KeyBlock` it hands over.

Two adapters implement the interface: :class:`qkdnet.quantum.emulator.KeyEmulator` (random
key at a modelled rate) and the key-file format of :mod:`qkdnet.quantum.keyfile` (blocks a
real device writes as files; :mod:`qkdnet.live.key_files` reads the folder). Sources are
sans-I/O with respect to time: the driver passes ``now`` (s) and the source returns what
became available up to then. :func:`qkdnet.keys.supply.deliver` puts a block into the key
stores at both ends of its KM-link.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from qkdnet.errors import ParameterError

#: A block is whole units of this many bytes (256 bits). The rule is part of the interface
#: between a device and its KMs, so it lives here, in the lower layer; the key stores keep,
#: take and delete key in the same units (:mod:`qkdnet.keys.pool` takes it from here).
UNIT_BYTES = 32


def whole_units(size: int) -> bool:
    """Whether ``size`` bytes make a valid block: a positive multiple of UNIT_BYTES."""
    return size > 0 and size % UNIT_BYTES == 0


@dataclass(frozen=True, slots=True)
class KeyBlock:
    """One block of QKD-key for KM-link ``km_link``, identical at both ends.

    ``block`` counts up from 0 per KM-link; ``material`` is a positive multiple of
    :data:`UNIT_BYTES` bytes.
    """

    km_link: str
    block: int
    material: bytes

    def __post_init__(self) -> None:
        if self.block < 0:
            raise ParameterError("block", self.block, "block numbers are >= 0")
        if not whole_units(len(self.material)):
            raise ParameterError("material", f"<{len(self.material)} bytes>",
                                 f"a block holds a positive multiple of {UNIT_BYTES} bytes")

    def __repr__(self) -> str:  # keep key material out of logs and tracebacks
        return (f"KeyBlock(km_link={self.km_link!r}, block={self.block}, "
                f"material=<{len(self.material)} bytes>)")


class KeySource(Protocol):
    """Where a KM-link's QKD-key comes from: a device adapter or an emulator."""

    def blocks(self, now: float) -> list[KeyBlock]:
        """Blocks that became available up to time ``now`` (s), in block order. Each block
        is returned once; what the caller does not deposit is lost, as at a real device."""
        ...
