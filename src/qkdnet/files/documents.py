"""YAML and JSON documents read from files: the file's suffix picks the format, a file that
cannot be read is a ScenarioError naming it, and the text is parsed by the topology layer
(:func:`~qkdnet.topology.scenario_file.parse_document`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel

from qkdnet.errors import ScenarioError
from qkdnet.topology.scenario_file import DocumentFormat, parse_document

S = TypeVar("S", bound=BaseModel)
T = TypeVar("T")


def document_format(path: Path) -> DocumentFormat:
    """JSON for a ``.json`` file, YAML for any other."""
    return "json" if path.suffix == ".json" else "yaml"


def read_document(path: Path) -> str:
    """The text of the file at ``path``; a missing file or one that is not UTF-8 text is a
    ScenarioError naming the file."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError("", f"cannot read scenario: {exc.strerror}", str(path)) from None
    except UnicodeDecodeError:
        raise ScenarioError("", "cannot read scenario: not UTF-8 text", str(path)) from None


def load_document(path: Path, model: type[S], build: Callable[[S], T]) -> T:
    """Read the document at ``path``, check it against ``model`` and ``build`` the result;
    every problem is a ScenarioError naming the file and the line."""
    return parse_document(read_document(path), str(path), document_format(path), model, build)
