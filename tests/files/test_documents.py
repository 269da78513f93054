"""Documents read from files: the suffix picks the format, and a file that cannot be read
is refused naming it."""

from __future__ import annotations

from pathlib import Path

import pytest

from qkdnet.errors import ScenarioError
from qkdnet.files.documents import document_format, load_document, read_document
from qkdnet.topology.scenario_file import ScenarioSpec, network_from_spec


@pytest.mark.parametrize(("name", "fmt"), [("net.json", "json"), ("net.yaml", "yaml"),
                                           ("net.yml", "yaml"), ("net", "yaml")])
def test_the_suffix_picks_the_format(name: str, fmt: str) -> None:
    """Only a .json file is read as strict JSON; anything else is YAML."""
    assert document_format(Path(name)) == fmt


def test_a_missing_file_is_refused_naming_it(tmp_path: Path) -> None:
    """Reading a file that is not there is a ScenarioError that names the file."""
    path = tmp_path / "absent.yaml"
    with pytest.raises(ScenarioError) as caught:
        read_document(path)
    assert caught.value.source == str(path)
    assert "cannot read" in caught.value.problem
    assert str(caught.value).startswith(f"{path}: ")


def test_a_file_that_is_not_utf8_text_is_refused_naming_it(tmp_path: Path) -> None:
    """Bytes that are not UTF-8 are a ScenarioError naming the file, not a decoding crash."""
    path = tmp_path / "binary.yaml"
    path.write_bytes(b"\xff\xfe\x00qkdnet_scenario: 1\n")
    with pytest.raises(ScenarioError) as caught:
        read_document(path)
    assert caught.value.source == str(path)
    assert str(caught.value) == f"{path}: cannot read scenario: not UTF-8 text"


def test_a_mistake_in_a_json_file_names_the_file_and_line(tmp_path: Path) -> None:
    """A .json file is parsed as JSON, and its mistakes carry the file's path and line."""
    path = tmp_path / "net.json"
    path.write_text('{\n  "qkdnet_scenario": 1,\n  "name": "tiny",\n  "nodes": [,]\n}\n',
                    encoding="utf-8")
    with pytest.raises(ScenarioError) as caught:
        load_document(path, ScenarioSpec, network_from_spec)
    assert (caught.value.source, caught.value.line) == (str(path), 4)
    assert str(caught.value).startswith(f"{path}:4: not valid JSON: ")
