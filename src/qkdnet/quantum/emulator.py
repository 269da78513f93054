"""A QKD device emulator: identical random key blocks for both ends of a KM-link, made at a
modelled secure key rate.

Time is the caller's: :meth:`KeyEmulator.blocks` takes ``now`` (s) and returns the whole
blocks completed since the previous call; the bits of an unfinished block carry over.
:meth:`KeyEmulator.next_block_at` tells a driver when to call next. The count is computed
from the time since the last rate change, not summed step by step, so it does not drift
whatever the step sizes.

Material comes from the ``random_bytes`` function the driver injects (the live network
passes :func:`secrets.token_bytes`); with a ``seed`` instead it is SHAKE-256 of the seed,
the KM-link id and the block number, so a run repeats exactly (and two KM-links with the
same seed still get different key). Seeded key is for tests and the twin, never for use.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable

from qkdnet.errors import ParameterError
from qkdnet.quantum.key_source import UNIT_BYTES, KeyBlock, whole_units
from qkdnet.quantum.link_rate import LinkSpec, link_skr_bps

#: The driver's source of fresh random bytes: n -> n bytes.
RandomBytes = Callable[[int], bytes]


class KeyEmulator:
    """Key blocks of ``block_bytes`` bytes for ``km_link`` at ``rate_bps`` × ``speedup``
    bit/s from time ``start`` (s); block numbers count up from ``first_block``. The material
    comes from exactly one of ``random_bytes`` (fresh key) and ``seed`` (repeatable key).
    Implements :class:`~qkdnet.quantum.key_source.KeySource`."""

    def __init__(self, km_link: str, rate_bps: float, *,
                 random_bytes: RandomBytes | None = None, seed: int | bytes | None = None,
                 block_bytes: int = 1024, speedup: float = 1.0, start: float = 0.0,
                 first_block: int = 0) -> None:
        if (random_bytes is None) == (seed is None):
            raise ParameterError("seed", "given" if seed is not None else None,
                                 "give exactly one of random_bytes (fresh key) and seed "
                                 "(repeatable key)")
        if not whole_units(block_bytes):
            raise ParameterError("block_bytes", block_bytes,
                                 f"must be a positive multiple of {UNIT_BYTES}")
        if not speedup > 0 or not math.isfinite(speedup):
            raise ParameterError("speedup", speedup, "must be > 0 and finite")
        if not math.isfinite(start):
            raise ParameterError("start", start, "must be a finite time (s)")
        self.km_link = km_link
        self.block_bytes = block_bytes
        self.speedup = speedup
        self._random_bytes = random_bytes
        self._seed = b"" if seed is None else _seed_bytes(seed)
        self._rate = _checked_rate(rate_bps)
        self._anchor_time = start  # time of the last rate change
        self._anchor_bits = 0.0  # bits made from start up to _anchor_time
        self._last = start  # time of the last call
        self._next_block = 0  # count of blocks handed out
        self._first = first_block  # number of the first block (a restart resumes past 0)

    @property
    def rate_bps(self) -> float:
        """The modelled secure key rate (bit/s), before ``speedup``."""
        return self._rate

    @property
    def block_bits(self) -> int:
        """Bits per block."""
        return self.block_bytes * 8

    def blocks(self, now: float, most: int | None = None) -> list[KeyBlock]:
        """The whole blocks completed since the last call, up to ``now`` (s), in block
        order; with ``most``, only the first ``most`` of them (the rest wait for the next
        call, as a device's buffer keeps key nobody has fetched yet). A ``now`` earlier than
        the last call's raises ParameterError (a ValueError)."""
        end = self._next_block + self.pending(now)
        if most is not None:
            end = min(end, self._next_block + max(most, 0))
        out = [self._block(n) for n in range(self._next_block, end)]
        self._next_block = max(end, self._next_block)
        return out

    @property
    def blocks_out(self) -> int:
        """Blocks handed out or skipped since start (the next one's number, less
        ``first_block``)."""
        return self._next_block

    def pending(self, now: float) -> int:
        """How many whole blocks are completed up to ``now`` (s) and not yet handed out."""
        self._advance(now)
        return max(self._made(now) - self._next_block, 0)

    def skip(self, now: float, most: int | None = None) -> int:
        """Let the blocks completed up to ``now`` (s) go unmade (with ``most``, only the
        oldest ``most`` of them), as a device whose key buffer is full discards key; their
        numbers are never used. Returns how many."""
        skipped = self.pending(now)
        if most is not None:
            skipped = min(skipped, max(most, 0))
        self._next_block += skipped
        return skipped

    def set_rate(self, rate_bps: float, now: float) -> None:
        """Change the rate from ``now`` (s) on; bits made before ``now`` are kept."""
        rate = _checked_rate(rate_bps)
        self._advance(now)
        self._anchor_bits = self._bits(now)
        self._anchor_time = now
        self._rate = rate

    def next_block_at(self) -> float:
        """The earliest time (s) at which :meth:`blocks` returns at least one block, at the
        present rate; ``math.inf`` at rate 0."""
        if self._made(self._last) > self._next_block:
            return self._last
        speed = self._rate * self.speedup
        if speed == 0:
            return math.inf
        needed = (self._next_block + 1) * self.block_bits - self._anchor_bits
        t = max(self._anchor_time + needed / speed, self._last)
        while self._made(t) <= self._next_block:  # step past float rounding
            t = math.nextafter(t, math.inf)
        return t

    def _advance(self, now: float) -> None:
        if not now >= self._last:
            raise ParameterError("now", now,
                                 f"time never goes back: must be >= {self._last:g} s")
        self._last = now

    def _bits(self, now: float) -> float:
        return self._anchor_bits + (now - self._anchor_time) * self._rate * self.speedup

    def _made(self, now: float) -> int:
        return math.floor(self._bits(now) / self.block_bits)

    def _block(self, number: int) -> KeyBlock:
        if self._random_bytes is None:
            link = self.km_link.encode()
            h = hashlib.shake_256(_framed(self._seed) + _framed(link)
                                  + (self._first + number).to_bytes(8, "big"))
            material = h.digest(self.block_bytes)
        else:
            material = self._random_bytes(self.block_bytes)
            if len(material) != self.block_bytes:
                raise ParameterError("random_bytes", f"<{len(material)} bytes>",
                                     f"must return the {self.block_bytes} bytes asked for")
        return KeyBlock(self.km_link, self._first + number, material)

    def __repr__(self) -> str:
        return (f"KeyEmulator(km_link={self.km_link!r}, rate_bps={self._rate:g}, "
                f"block_bytes={self.block_bytes}, speedup={self.speedup:g}, "
                f"seeded={self._random_bytes is None})")


def emulator_for_link(link: LinkSpec, km_link_id: str, *,
                      random_bytes: RandomBytes | None = None,
                      seed: int | bytes | None = None, block_bytes: int = 1024,
                      speedup: float = 1.0, start: float = 0.0,
                      first_block: int = 0) -> KeyEmulator:
    """An emulator for KM-link ``km_link_id`` producing key at the link's rate,
    :func:`~qkdnet.quantum.link_rate.link_skr_bps`."""
    return KeyEmulator(km_link_id, link_skr_bps(link), random_bytes=random_bytes, seed=seed,
                       block_bytes=block_bytes, speedup=speedup, start=start,
                       first_block=first_block)


def _checked_rate(rate_bps: float) -> float:
    if not rate_bps >= 0 or not math.isfinite(rate_bps):
        raise ParameterError("rate_bps", rate_bps, "must be >= 0 bit/s and finite")
    return float(rate_bps)


def _seed_bytes(seed: int | bytes) -> bytes:
    if isinstance(seed, bytes):
        return b"bytes:" + seed
    return b"int:" + str(int(seed)).encode()


def _framed(data: bytes) -> bytes:
    """``data`` with its length in front, so concatenations cannot collide."""
    return len(data).to_bytes(8, "big") + data
