"""The key-file format without a folder: which of the names a device's folder lists are new
key files, in block order, and the blocks their contents make, each delivered once."""

from __future__ import annotations

import pytest

from qkdnet.errors import ScenarioError
from qkdnet.quantum.keyfile import KeyFileLedger, block_number

LINK = "km:a~b"


def _contents(name: str, size: int = 64) -> tuple[str, bytes]:
    return name, bytes((len(name) + i) % 256 for i in range(size))


def test_new_key_files_come_in_block_order_and_are_delivered_once() -> None:
    """Only .key names count, sorted by number; accepted files are not pending again."""
    ledger = KeyFileLedger(LINK)
    listing = ["1.key", "0.key", "2.key.tmp", "notes.txt"]
    assert ledger.pending(listing) == ["0.key", "1.key"]
    files = [_contents("0.key", 96), _contents("1.key")]
    blocks = ledger.accept(files)
    assert [(b.km_link, b.block, b.material) for b in blocks] == [
        (LINK, 0, files[0][1]), (LINK, 1, files[1][1])]
    assert ledger.pending(listing) == []
    assert ledger.pending([*listing, "2.key", "5.key", "3.key"]) == ["2.key", "3.key", "5.key"]


def test_a_file_of_the_wrong_size_is_refused_by_name_and_nothing_counts() -> None:
    """A size that is not a multiple of 32 bytes names the file; the good file with it stays
    pending, so nothing is lost."""
    ledger = KeyFileLedger(LINK)
    with pytest.raises(ScenarioError, match=r"7\.key.*33 bytes") as caught:
        ledger.accept([_contents("0.key"), _contents("7.key", 33)])
    assert caught.value.source == "7.key"
    assert ledger.pending(["0.key", "7.key"]) == ["0.key", "7.key"]


def test_a_bad_name_or_two_files_for_one_block_are_refused_by_name() -> None:
    """Only decimal block numbers name key files; one file per block."""
    with pytest.raises(ScenarioError, match=r"abc\.key.*block number"):
        KeyFileLedger(LINK).pending(["abc.key"])
    with pytest.raises(ScenarioError, match="block 4"):
        KeyFileLedger(LINK).pending(["4.key", "004.key"])
    assert block_number("0017.key") == 17
    with pytest.raises(ScenarioError, match="block number"):
        block_number("17.key.tmp")
