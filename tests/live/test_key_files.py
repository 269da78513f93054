"""The key-file adapter on a real folder hands over each complete device file once, in
block order, and names a bad file or a missing folder by its path."""

from __future__ import annotations

from pathlib import Path

import pytest

from qkdnet.errors import ScenarioError
from qkdnet.live.key_files import KeyFileSource
from qkdnet.quantum.emulator import KeyEmulator
from qkdnet.quantum.key_source import KeySource

LINK = "km:a~b"


def _write(folder: Path, name: str, size: int = 64) -> bytes:
    material = bytes((len(name) + i) % 256 for i in range(size))
    (folder / name).write_bytes(material)
    return material


def test_key_files_are_delivered_once_in_block_order(tmp_path: Path) -> None:
    """New .key files come out in block order, each once; a .tmp file waits for its rename."""
    source = KeyFileSource(tmp_path, LINK)
    one, zero = _write(tmp_path, "1.key"), _write(tmp_path, "0.key", 96)
    two = _write(tmp_path, "2.key.tmp")
    (tmp_path / "notes.txt").write_text("not key")
    first = source.blocks(0.0)
    assert [(b.km_link, b.block, b.material) for b in first] == [(LINK, 0, zero), (LINK, 1, one)]
    assert source.blocks(1.0) == []
    (tmp_path / "2.key.tmp").rename(tmp_path / "2.key")
    five, three = _write(tmp_path, "5.key"), _write(tmp_path, "3.key")
    assert [(b.block, b.material) for b in source.blocks(2.0)] == [
        (2, two), (3, three), (5, five)]
    assert source.blocks(3.0) == []
    assert [b.block for b in source.blocks(0.0)] == []  # `now` is ignored


def test_a_key_file_of_the_wrong_size_is_refused_by_its_path(tmp_path: Path) -> None:
    """A size that is not a multiple of 32 bytes names the file; nothing is delivered."""
    source = KeyFileSource(tmp_path, LINK)
    _write(tmp_path, "0.key")
    _write(tmp_path, "7.key", 33)
    with pytest.raises(ScenarioError, match=r"7\.key.*33 bytes") as caught:
        source.blocks(0.0)
    assert caught.value.source == str(tmp_path / "7.key")
    (tmp_path / "7.key").unlink()
    assert [b.block for b in source.blocks(0.0)] == [0]


def test_a_key_file_with_a_bad_name_is_refused_by_name(tmp_path: Path) -> None:
    """Only decimal block numbers name key files; one file per block."""
    (tmp_path / "abc.key").write_bytes(bytes(32))
    with pytest.raises(ScenarioError, match=r"abc\.key.*block number"):
        KeyFileSource(tmp_path, LINK).blocks(0.0)
    (tmp_path / "abc.key").unlink()
    _write(tmp_path, "4.key")
    _write(tmp_path, "004.key")
    with pytest.raises(ScenarioError, match="block 4"):
        KeyFileSource(tmp_path, LINK).blocks(0.0)


def test_a_missing_key_folder_is_an_error_naming_it(tmp_path: Path) -> None:
    """A folder that is not there is reported with its path."""
    with pytest.raises(ScenarioError, match="missing") as caught:
        KeyFileSource(tmp_path / "missing", LINK).blocks(0.0)
    assert caught.value.source == str(tmp_path / "missing")


def test_both_device_adapters_are_key_sources(tmp_path: Path) -> None:
    """The key-file folder and the emulator fit the KeySource protocol."""
    sources: list[KeySource] = [KeyEmulator(LINK, 8000.0, seed=1),
                                KeyFileSource(tmp_path, LINK)]
    assert all(s.blocks(0.0) == [] for s in sources)
