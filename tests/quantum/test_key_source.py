"""A key block is whole 32-byte units under a block number, and never shows its key."""

from __future__ import annotations

import pytest

from qkdnet.errors import ParameterError
from qkdnet.quantum.key_source import UNIT_BYTES, KeyBlock, whole_units

LINK = "km:a~b"


def test_key_block_repr_hides_material() -> None:
    """Key material never reaches logs: the repr shows its length only."""
    block = KeyBlock(LINK, 3, bytes(range(32)))
    assert repr(block) == f"KeyBlock(km_link={LINK!r}, block=3, material=<32 bytes>)"
    assert "\\x01" not in repr(block) and "material=b" not in str(block)


def test_key_block_holds_whole_units() -> None:
    """A block is a positive multiple of the unit; its number is not negative."""
    assert [whole_units(n) for n in (0, 1, UNIT_BYTES, 2 * UNIT_BYTES, UNIT_BYTES + 1)] == [
        False, False, True, True, False]
    with pytest.raises(ParameterError, match="material"):
        KeyBlock(LINK, 0, bytes(UNIT_BYTES + 1))
    with pytest.raises(ParameterError, match="material"):
        KeyBlock(LINK, 0, b"")
    with pytest.raises(ParameterError, match="block"):
        KeyBlock(LINK, -1, bytes(UNIT_BYTES))
